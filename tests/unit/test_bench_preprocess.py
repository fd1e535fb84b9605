"""`radstream bench preprocess` at a tiny size: every input measured on both paths, within tolerance."""

from __future__ import annotations

from radstream.bench.preprocess import format_table, inputs, run
from radstream.pipeline.readers import read_image


def test_every_input_is_measured_on_both_paths_and_agrees_within_the_tolerance():
    result = run(size=256, repeat=1)
    rows = {r["input"]: r for r in result["inputs"]}
    assert set(rows) == {"real-radiograph", "jpeg", "png16", "dicom"}
    for row in rows.values():
        assert row["fast_ms"] > 0 and row["plain_ms"] > 0
        assert row["speedup"] > 0  # a ratio, never asserted against a time
        assert row["within_tolerance"] and row["mean_abs_difference"] <= row["tolerance"]
    assert (rows["jpeg"]["width"], rows["jpeg"]["height"]) == (256, 256)
    assert rows["real-radiograph"]["width"] > 1000  # the real one keeps its size
    assert result["all_within_tolerance"]
    assert "speedup" in format_table(result)


def test_the_generated_inputs_are_what_they_say():
    by_name = {i.name: i for i in inputs(size=300)}
    for name, fmt in (("jpeg", "jpeg"), ("png16", "png"), ("dicom", "dicom"), ("real-radiograph", "dicom")):
        decoded = read_image(by_name[name].data)
        assert decoded.format == fmt, name
    assert read_image(by_name["png16"].data).pixels.shape == (300, 300)
