import numpy as np
import pytest
import tifffile

from plateflow.core.imageio import (
    UnreadableImageError,
    dtype_max,
    read_image,
    read_site,
    read_stack,
    sha256_site,
    write_stack,
)


def test_read_site_stacks_channels_in_order(tmp_path):
    files = {}
    for i, name in enumerate(["DNA", "ER"]):
        files[name] = tmp_path / f"{name}.tif"
        tifffile.imwrite(files[name], np.full((5, 7), i + 1, np.uint16))
    stack = read_site(files, ["ER", "DNA"])
    assert stack.shape == (2, 5, 7) and stack.dtype == np.uint16
    assert stack[0, 0, 0] == 2 and stack[1, 0, 0] == 1


def test_truncated_and_missing_files_are_unreadable_with_their_name(tmp_path):
    path = tmp_path / "P1_B02_s1_w2.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint16))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UnreadableImageError, match="P1_B02_s1_w2.tif"):
        read_image(path)
    with pytest.raises(UnreadableImageError, match="nothere.tif"):
        read_image(tmp_path / "nothere.tif")


def test_channels_of_different_size_are_refused(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((4, 4), np.uint16))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((4, 5), np.uint16))
    with pytest.raises(UnreadableImageError, match="differ in shape"):
        read_site({"A": tmp_path / "a.tif", "B": tmp_path / "b.tif"}, ["A", "B"])


def test_site_hash_depends_on_content_and_channel_order(tmp_path):
    files = {}
    for name in ("A", "B"):
        files[name] = tmp_path / f"{name}.tif"
        tifffile.imwrite(files[name], np.full((4, 4), ord(name), np.uint8))
    first = sha256_site(files, ["A", "B"])
    assert len(first) == 64 and first == sha256_site(files, ["A", "B"])
    assert first != sha256_site(files, ["B", "A"])
    tifffile.imwrite(files["B"], np.full((4, 4), 0, np.uint8))
    assert first != sha256_site(files, ["A", "B"])


def test_stack_round_trip_keeps_metadata(tmp_path):
    stack = np.random.default_rng(0).random((3, 8, 9)).astype(np.float32)
    write_stack(tmp_path / "s.tiff", stack, metadata={"channels": ["a", "b", "c"], "n": 1})
    back, meta = read_stack(tmp_path / "s.tiff")
    np.testing.assert_array_equal(back, stack)
    assert meta == {"channels": ["a", "b", "c"], "n": 1}


def test_dtype_max():
    assert dtype_max(np.uint16) == 65535
    assert dtype_max(np.uint8) == 255
    assert dtype_max(np.uint16, bit_depth=12) == 4095
    with pytest.raises(ValueError, match="integer"):
        dtype_max(np.float32)
