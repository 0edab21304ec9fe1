from napari_digits import sample_data


def test_manifest_is_valid_and_found_by_npe2():
    from npe2 import PluginManager

    pm = PluginManager()
    pm.discover()
    manifest = pm.get_manifest("napari-digits")
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert widgets == {"Kernels", "Learned filters", "Training", "Read digits"}
    samples = {s.key for s in manifest.contributions.sample_data}
    assert {"portrait", "scanned_page"} <= samples


def test_portrait_sample_is_rgb_uint8():
    [(data, meta, kind)] = sample_data.portrait()
    assert kind == "image" and meta["rgb"]
    assert data.ndim == 3 and data.shape[-1] == 3 and data.dtype.name == "uint8"


def test_portrait_sample_opens_in_a_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-digits", "portrait")
    assert viewer.layers["portrait"].rgb
