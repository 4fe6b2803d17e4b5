import hashlib

import pytest

from plateflow.segmentation.weights import ModelStagingError, stage_weights


def _weights(tmp_path, content=b"fake-weights-made-by-the-test"):
    path = tmp_path / "source.pt"
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def test_local_weights_are_copied_and_verified(tmp_path):
    source, digest = _weights(tmp_path)
    staged = stage_weights(str(source), sha256=digest, destination=tmp_path / "cache" / "m.pt")
    assert staged.read_bytes() == source.read_bytes()
    # A second call finds the verified cache and does not need the source.
    source.unlink()
    assert stage_weights(str(source), sha256=digest, destination=staged) == staged


def test_wrong_hash_is_refused_and_nothing_is_left(tmp_path):
    source, _ = _weights(tmp_path)
    with pytest.raises(ModelStagingError, match="expected 0000"):
        stage_weights(str(source), sha256="0" * 64, destination=tmp_path / "cache" / "m.pt")
    assert list((tmp_path / "cache").iterdir()) == []


def test_offline_download_says_where_to_put_the_file(tmp_path):
    with pytest.raises(ModelStagingError, match="looks offline.*Copy the file to"):
        stage_weights("http://127.0.0.1:9/weights.pt", sha256="a" * 64,
                      destination=tmp_path / "cache" / "m.pt", timeout=5)


def test_missing_source_and_bad_hash_format(tmp_path):
    with pytest.raises(ModelStagingError, match="does not exist"):
        stage_weights(str(tmp_path / "nope.pt"), sha256="a" * 64, destination=tmp_path / "m.pt")
    with pytest.raises(ModelStagingError, match="64-hex-digit"):
        stage_weights(str(tmp_path / "nope.pt"), sha256="abc", destination=tmp_path / "m.pt")


def _segmentation(method, members=()):
    return {"method": method, "gpu": False,
            "model": {"name": None, "source": None, "sha256": None},
            "ensemble": {"members": [{"method": m, "params": {}} for m in members],
                         "flips": False}}


def test_an_ensemble_with_a_cellpose_member_uses_a_model():
    from plateflow.sheets.checks import config_warnings, uses_model

    assert uses_model(_segmentation("cellpose"))
    assert not uses_model(_segmentation("classical"))
    assert not uses_model(_segmentation("ensemble", ["classical", "classical"]))
    assert uses_model(_segmentation("ensemble", ["classical", "cellpose"]))
    # so the load-time advice sees the model too: no GPU asked for a model's work
    warnings = config_warnings({"segmentation": _segmentation("ensemble", ["cellpose"])})
    assert any("slowly" in w for w in warnings), warnings
    gpu = {**_segmentation("ensemble", ["classical"]), "gpu": True}
    assert any("does not use one" in w for w in config_warnings({"segmentation": gpu}))
