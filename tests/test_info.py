"""``stampnet info``: what it reports is tried on this machine, and install mistakes are named."""

from __future__ import annotations

from stampnet import info


def test_info_reports_devices_and_working_xla_and_mixed_precision(capsys):
    report = info.collect()
    assert report["tensorflow"] and report["keras_backend"] == "tensorflow"
    assert any(device["type"] == "CPU" for device in report["devices"])
    assert report["xla"]["CPU"]["usable"] is True
    assert report["mixed_precision"]["usable"] is True
    assert report["problems"] == []
    text = info.format_report(report)
    assert "XLA on CPU: usable" in text and "mixed precision (mixed_float16): usable" in text


def test_two_tensorflow_builds_side_by_side_are_a_problem(monkeypatch):
    monkeypatch.setattr(
        info,
        "installed_versions",
        lambda names: (
            {"tensorflow": "2.21.0", "tensorflow-cpu": "2.21.0"} if "tensorflow" in names else {}
        ),
    )
    report = info.collect()
    assert len(report["problems"]) == 1
    assert "tensorflow, tensorflow-cpu" in report["problems"][0]
    assert '".[cpu]"' in report["problems"][0]
