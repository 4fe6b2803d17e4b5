from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from plateflow.core.contract import well_batch
from plateflow.sheets.discovery import discover_plate, load_experiment
from plateflow.sheets.errors import DiscoveryError
from plateflow.sheets.platemap import read_platemap

CHANNELS = {1: "DNA", 2: "ER", 3: "Mito"}


def _plate(tmp_path: Path, wells=("B02", "B03"), sites=(1, 2), channels=(1, 2, 3), roles=None,
           name="P1"):
    folder = tmp_path / name
    folder.mkdir()
    for well in wells:
        for site in sites:
            for ch in channels:
                tifffile.imwrite(folder / f"{name}_{well}_s{site}_w{ch}.tif",
                                 np.zeros((4, 4), np.uint16))
    roles = roles or ["negcon"] + ["trt"] * (len(wells) - 1)
    pd.DataFrame({"well": list(wells), "role": roles, "dose_uM": range(len(wells))}).to_csv(
        tmp_path / f"{name}.csv", index=False)
    return {"folder": name, "naming": "metaxpress", "platemap": f"{name}.csv"}


def test_discovers_sites_in_order_with_channel_names(tmp_path):
    config = _plate(tmp_path, wells=("B10", "B02"), sites=(1, 2, 10))
    sheet = discover_plate("P1", config, channel_map=CHANNELS, base_dir=tmp_path)
    assert sheet.channels == ["DNA", "ER", "Mito"]
    assert [(s.well, s.site) for s in sheet.sites] == [
        ("B02", "1"), ("B02", "2"), ("B02", "10"), ("B10", "1"), ("B10", "2"), ("B10", "10")]
    assert sheet.site("B02", "2").files["ER"].endswith("P1_B02_s2_w2.tif")
    frame = sheet.to_frame()
    assert list(frame.columns) == ["Metadata_Plate", "Metadata_Well", "Metadata_Site",
                                   "Image_FileName_DNA", "Image_FileName_ER", "Image_FileName_Mito"]
    assert sheet.platemap_row("B10") == {"Metadata_Well": "B10", "Metadata_Role": "negative_control",
                                         "Metadata_dose_uM": 0}
    assert sheet.platemap_row("B02")["Metadata_Role"] == "treatment"


def test_well_batches_are_fixed_blocks_of_a_plate_row():
    assert well_batch("A01", 4) == "A01-A04"
    assert well_batch("A04", 4) == "A01-A04"
    assert well_batch("A05", 4) == "A05-A08"
    assert well_batch("P24", 6) == "P19-P24"
    assert well_batch("AF48", 8) == "AF41-AF48"  # 1536-well plates
    assert well_batch("B07", 1) == "B07"
    with pytest.raises(ValueError, match="at least 1"):
        well_batch("A01", 0)
    with pytest.raises(ValueError, match="row letter"):
        well_batch("r01c01", 4)


def test_plate_batches_group_sites_and_do_not_move_when_wells_are_added(tmp_path):
    config = _plate(tmp_path, wells=("B02", "B03", "B05", "C01"), sites=(1, 2))
    sheet = discover_plate("P1", config, channel_map=CHANNELS, base_dir=tmp_path)
    batches = sheet.batches(4)
    assert {k: [(s.well, s.site) for s in v] for k, v in batches.items()} == {
        "B01-B04": [("B02", "1"), ("B02", "2"), ("B03", "1"), ("B03", "2")],
        "B05-B08": [("B05", "1"), ("B05", "2")],
        "C01-C04": [("C01", "1"), ("C01", "2")],
    }
    assert list(sheet.batches(1)) == ["B02", "B03", "B05", "C01"]
    # A well added later joins its own block; the other batches keep their sites.
    (tmp_path / "more").mkdir()
    more = _plate(tmp_path / "more", wells=("B02", "B03", "B04", "B05", "C01"), sites=(1, 2))
    bigger = discover_plate("P1", more, channel_map=CHANNELS, base_dir=tmp_path / "more")
    grown = bigger.batches(4)
    assert [(s.well, s.site) for s in grown["B01-B04"]][-2:] == [("B04", "1"), ("B04", "2")]
    for name in ("B05-B08", "C01-C04"):
        assert [(s.well, s.site) for s in grown[name]] == [(s.well, s.site) for s in batches[name]]


def test_missing_channel_names_plate_well_site_and_file(tmp_path):
    config = _plate(tmp_path)
    (tmp_path / "P1" / "P1_B03_s2_w3.tif").unlink()
    with pytest.raises(DiscoveryError) as err:
        discover_plate("P1", config, channel_map=CHANNELS, base_dir=tmp_path)
    message = str(err.value)
    assert "plate P1" in message
    assert "well B03, site 2: missing channel(s) Mito" in message
    assert "P1_B03_s2_w" in message


def test_unmatched_files_are_listed(tmp_path):
    config = _plate(tmp_path)
    for i in range(7):
        tifffile.imwrite(tmp_path / "P1" / f"scan_{i}.tif", np.zeros((2, 2), np.uint8))
    (tmp_path / "P1" / "notes.txt").write_text("ignored: not an image")
    with pytest.raises(DiscoveryError, match=r"7 file\(s\) .* match no naming scheme .*scan_0.tif.*and 2 more"):
        discover_plate("P1", config, channel_map=CHANNELS, base_dir=tmp_path)
    config["exclude"] = "^scan_"
    assert len(discover_plate("P1", config, channel_map=CHANNELS, base_dir=tmp_path).sites) == 4


def test_duplicate_site_is_reported(tmp_path):
    config = _plate(tmp_path)
    # The same well/site/channel, once with a MetaXpress GUID suffix.
    tifffile.imwrite(tmp_path / "P1" / "P1_B02_s1_w1a571d43d-5554-47fd-bb54-5db68290e5a7.tif",
                     np.zeros((4, 4), np.uint16))
    with pytest.raises(DiscoveryError, match="well B02, site 1: channel 'DNA' appears 2 times"):
        discover_plate("P1", config, channel_map=CHANNELS, base_dir=tmp_path)


def test_unknown_channel_is_reported(tmp_path):
    config = _plate(tmp_path, channels=(1, 2, 3, 4))
    with pytest.raises(DiscoveryError, match="channel '4', which the channel map"):
        discover_plate("P1", config, channel_map=CHANNELS, base_dir=tmp_path)


def test_platemap_and_plate_must_agree(tmp_path):
    config = _plate(tmp_path, wells=("B02", "B03"))
    pd.DataFrame({"well": ["B02", "C05"], "role": ["negcon", "trt"]}).to_csv(
        tmp_path / "P1.csv", index=False)
    with pytest.raises(DiscoveryError) as err:
        discover_plate("P1", config, channel_map=CHANNELS, base_dir=tmp_path)
    assert "platemap well(s) have no images" in str(err.value) and "C05" in str(err.value)
    assert "imaged well(s) are missing from the platemap" in str(err.value)
    assert "B03" in str(err.value)


def test_platemap_roles_are_checked(tmp_path):
    path = tmp_path / "map.csv"
    pd.DataFrame({"Well": ["a1", "A02"], "Role": ["DMSO", "poscon"]}).to_csv(path, index=False)
    with pytest.raises(DiscoveryError, match="well A01: role 'DMSO' is not one of"):
        read_platemap(path, plate="P1")
    pd.DataFrame({"well": ["A01"], "treatment": ["x"]}).to_csv(path, index=False)
    with pytest.raises(DiscoveryError, match="no 'role' column"):
        read_platemap(path, plate="P1")


def test_planes_need_a_choice(tmp_path):
    folder = tmp_path / "op"
    folder.mkdir()
    for plane in (1, 2):
        for ch in (1, 2):
            tifffile.imwrite(folder / f"r02c03f01p0{plane}-ch{ch}sk1fk1fl1.tiff",
                             np.zeros((4, 4), np.uint16))
    pd.DataFrame({"well": ["B03"], "role": ["negcon"]}).to_csv(tmp_path / "m.csv", index=False)
    config = {"folder": "op", "naming": "operetta", "platemap": "m.csv"}
    with pytest.raises(DiscoveryError, match="set 'plane'"):
        discover_plate("OP", config, channel_map={1: "DNA", 2: "ER"}, base_dir=tmp_path)
    config["plane"] = 2
    sheet = discover_plate("OP", config, channel_map={1: "DNA", 2: "ER"}, base_dir=tmp_path)
    assert sheet.sites[0].files["DNA"].endswith("r02c03f01p02-ch1sk1fk1fl1.tiff")


def test_experiment_reports_every_plate_and_checks_channels(tmp_path):
    good = _plate(tmp_path, name="P1")
    bad = _plate(tmp_path, name="P2")
    (tmp_path / "P2" / "P2_B02_s1_w1.tif").unlink()
    with pytest.raises(DiscoveryError, match="plate P2"):
        load_experiment({"plates": {"P1": good, "P2": bad}, "channels": CHANNELS},
                        base_dir=tmp_path)
    two_channels = _plate(tmp_path, name="P3", channels=(1, 2))
    two_channels["channels"] = {1: "DNA", 2: "ER"}
    with pytest.raises(DiscoveryError, match="same channel names"):
        load_experiment({"plates": {"P1": good, "P3": two_channels}, "channels": CHANNELS},
                        base_dir=tmp_path)
    experiment = load_experiment({"plates": {"P1": good}, "channels": CHANNELS},
                                 base_dir=tmp_path)
    assert experiment.channels == ["DNA", "ER", "Mito"]


# ------------------------------------------------------------------------------ real data --
def test_transfluor_plate_discovery(real_data, tmp_path):
    wells = [f"O{c:02d}" for c in range(1, 25)]
    pd.DataFrame({"well": wells, "role": ["negcon"] * 4 + ["trt"] * 20}).to_csv(
        tmp_path / "map.csv", index=False)
    config = {"folder": str(real_data / "transfluor-plate"), "naming": "cellomics",
              "platemap": str(tmp_path / "map.csv")}
    sheet = discover_plate("TF", config, channel_map={2: "GFP"})
    assert len(sheet.sites) == 72
    assert sheet.wells == wells
    assert {s.site for s in sheet.sites} == {"0", "1", "2"}


def test_cellpainting_phenix_and_nf1_discovery(real_data, tmp_path):
    pd.DataFrame({"well": ["C03"], "role": ["negcon"]}).to_csv(tmp_path / "m.csv", index=False)
    config = {"folder": str(real_data / "cellpainting-fields/pediatric-BR00143976/orig"),
              "naming": "operetta", "platemap": str(tmp_path / "m.csv")}
    names = {1: "DNA", 2: "ER", 3: "RNA", 4: "AGP", 5: "Mito", 6: "Brightfield"}
    sheet = discover_plate("BR00143976", config, channel_map=names)
    assert [(s.well, s.site) for s in sheet.sites] == [("C03", "3")]
    assert sheet.sites[0].files["Mito"].endswith("r03c03f03p01-ch5sk1fk1fl1.tiff")

    pd.DataFrame({"well": ["B7", "D6", "D7", "F7", "H12"], "role": ["negcon"] * 5}).to_csv(
        tmp_path / "nf1.csv", index=False)
    config = {"folder": str(real_data / "cellpainting-fields/nf1-plate2/Plate_2_images"),
              "naming": r"^(?P<well>[A-P]\d{1,2})_\d+_(?P<channel>\d)_(?P<site>\d+)_[A-Za-z]+_\d+\.tif$",
              "platemap": str(tmp_path / "nf1.csv")}
    sheet = discover_plate("NF1", config, channel_map={1: "DNA", 2: "GFP", 3: "RFP"})
    assert sheet.wells == ["B07", "D06", "D07", "F07", "H12"]
    assert sheet.site("B07", "3").files["RFP"].endswith("B7_01_3_3_RFP_001.tif")
