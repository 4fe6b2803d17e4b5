import json

import pandas as pd
import pyarrow.parquet as pq

from plateflow import __version__
from plateflow.core.provenance import (
    PROVENANCE_COLUMNS,
    add_provenance,
    combine_hashes,
    params_hash,
    read_file_metadata,
    read_table,
    write_table,
)


def test_params_hash_is_stable_and_order_free():
    assert params_hash({"a": 1, "b": {"c": 2}}) == params_hash({"b": {"c": 2}, "a": 1})
    assert params_hash({"a": 1}) != params_hash({"a": 2})
    assert len(params_hash({})) == 16


def test_combine_hashes_ignores_order():
    assert combine_hashes(["b", "a"]) == combine_hashes(["a", "b"])
    assert combine_hashes(["a"]) != combine_hashes(["a", "b"])


def test_every_row_gets_provenance_and_the_file_the_params(tmp_path):
    table = pd.DataFrame({"Metadata_Well": ["A01", "A02"], "Cells_AreaShape_Area": [1.0, 2.0]})
    params = {"threshold": 0.5, "nested": {"k": [1, 2]}}
    out = add_provenance(
        table, step="segment_site", params=params,
        image_sha256=pd.Series(["h1", "h2"]), lineage={"measure_site_qc": "abc"},
        segmentation={"method": "classical", "model": None, "weights_sha256": None},
    )
    assert set(PROVENANCE_COLUMNS) <= set(out.columns)
    assert list(out["Metadata_Provenance_ImageSHA256"]) == ["h1", "h2"]
    assert set(out["Metadata_Provenance_Step"]) == {"segment_site"}
    assert set(out["Metadata_Provenance_ParamsHash"]) == {params_hash(params)}
    assert set(out["Metadata_Provenance_PipelineVersion"]) == {__version__}
    versions = json.loads(out["Metadata_Provenance_Versions"].iloc[0])
    assert {"numpy", "pandas", "scikit-image", "plateflow"} <= set(versions)
    lineage = json.loads(out["Metadata_Provenance_Lineage"].iloc[0])
    assert lineage == {"measure_site_qc": "abc", "segment_site": params_hash(params)}
    assert out["Metadata_Provenance_Timestamp"].iloc[0].endswith("+00:00")

    path = tmp_path / "t.parquet"
    write_table(out, path, step="segment_site", params=params, lineage={"measure_site_qc": "abc"})
    meta = read_file_metadata(path)
    assert meta["step"] == "segment_site"
    assert meta["params"] == params
    assert meta["lineage"]["segment_site"] == params_hash(params)
    back = read_table(path)
    pd.testing.assert_frame_equal(back, out, check_dtype=False)
    assert pq.read_schema(path).metadata[b"plateflow.version"] == __version__.encode()
