import pytest

from plateflow.sheets.naming import PRESETS, NamingScheme, normalize_well, well_from_row_column


@pytest.mark.parametrize(
    "scheme, filename, expected",
    [
        ("cellomics", "AS_09125_050116030001_D03f00d0.tif",
         ("AS_09125_050116030001", "D03", "0", "0", None)),
        ("cellomics", "AS_09047_050428030001_O24f02d2.TIF",
         ("AS_09047_050428030001", "O24", "2", "2", None)),
        ("metaxpress", "PLATE1_B03_s4_w2.tif", ("PLATE1", "B03", "4", "2", None)),
        ("metaxpress", "00_mcf-z-stacks-03212011_a01_s1_w1a571d43d-5554-47fd-bb54-5db68290e5a7.tif",
         ("00_mcf-z-stacks-03212011", "A01", "1", "1", None)),
        ("metaxpress", "00_mcf-z-stacks-03212011_a19_s2_w12703a47b-7574-461a-85e2-afc38bc0adae.tif",
         ("00_mcf-z-stacks-03212011", "A19", "2", "1", None)),
        ("metaxpress", "P_C10_s12_w11.tif", ("P", "C10", "12", "11", None)),
        ("operetta", "r01c01f01p01-ch1sk1fk1fl1.tiff", (None, "A01", "1", "1", "01")),
        ("operetta", "r03c12f09p02-ch5sk1fk1fl1.tiff", (None, "C12", "9", "5", "02")),
    ],
)
def test_presets_parse_real_export_names(scheme, filename, expected):
    parsed = NamingScheme(scheme).parse(filename)
    assert parsed is not None
    assert (parsed.plate, parsed.well, parsed.site, parsed.channel, parsed.plane) == expected


@pytest.mark.parametrize("scheme", sorted(PRESETS))
def test_presets_reject_foreign_names(scheme):
    assert NamingScheme(scheme).parse("thumbnail.jpg") is None
    assert NamingScheme(scheme).parse("Index.idx.xml") is None


def test_custom_regex_with_row_and_column():
    scheme = NamingScheme(r"^R(?P<row>\d+)C(?P<column>\d+)_F(?P<site>\d+)_(?P<channel>[A-Z]+)\.tif$")
    parsed = scheme.parse("R2C7_F3_DAPI.tif")
    assert (parsed.well, parsed.site, parsed.channel) == ("B07", "3", "DAPI")


def test_custom_regex_must_name_the_needed_groups():
    with pytest.raises(ValueError, match="site"):
        NamingScheme(r"^(?P<well>[A-P]\d+)_(?P<channel>\d)\.tif$")
    with pytest.raises(ValueError, match="well"):
        NamingScheme(r"^(?P<site>\d+)_(?P<channel>\d)\.tif$")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        NamingScheme(r"^(?P<well>[A-P")


def test_well_names():
    assert normalize_well("b7") == "B07"
    assert normalize_well("H12") == "H12"
    assert normalize_well("P024") == "P24"
    assert well_from_row_column(16, 24) == "P24"
    assert well_from_row_column(1, 1) == "A01"
    with pytest.raises(ValueError):
        normalize_well("7B")
    with pytest.raises(ValueError):
        well_from_row_column(0, 1)
