from bnlab.data import load


def test_mnist1d_never_caches_into_bnlab_data(tmp_path, monkeypatch):
    supplied = tmp_path / "supplied"
    supplied.mkdir()
    cache = tmp_path / "xdg"
    monkeypatch.setenv("BNLAB_DATA", str(supplied))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    x, _ = load("mnist1d", "train", num_samples=200)
    assert x.shape[1:] == (1, 40)
    assert list(supplied.iterdir()) == []
    assert list((cache / "bnlab").glob("mnist1d-*.npz"))


def test_mnist1d_caches_into_an_explicit_data_dir(tmp_path):
    load("mnist1d", "test", data_dir=tmp_path, num_samples=200)
    assert list(tmp_path.glob("mnist1d-*.npz"))
