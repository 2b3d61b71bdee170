"""bench/report.py renders what bench.run measured: the encryption scenarios (x) included."""

from __future__ import annotations

from pathlib import Path

from bench.report import render


def _row(tool: str, median: float, cpu: float, rss: float) -> dict[str, object]:
    return {"tool": tool, "kind": "snapferry", "runs": 5, "median": median, "min": median, "max": median,
            "mbps": 500.0, "rss_mib": rss, "cpu": cpu, "server_cpu": 0.0, "other_cpu": 0.0}


def test_x_scenarios_are_rendered_with_their_ratios(tmp_path: Path) -> None:
    data = {"scenarios": {
        "x-backup-fs": {"title": "full backup, encrypted vs not, fs://", "data_bytes": 1 << 30,
                        "rows": [_row("snapferry", 2.0, 1.0, 120.0), _row("snapferry --encrypt", 2.2, 1.3, 130.0)]},
        "x-restore-s3": {"title": "full restore, encrypted vs not, s3://", "data_bytes": 1 << 30,
                         "rows": [_row("snapferry", 4.0, 1.0, 90.0), _row("snapferry encrypted", 5.0, 1.4, 95.0)]},
    }}
    render(tmp_path, data)
    md = (tmp_path / "results.md").read_text()
    results = md.split("## Results", 1)[1]
    assert "| **x-backup-fs** full backup, encrypted vs not, fs:// | snapferry | 5 | 2.00 |" in results
    assert "|  | snapferry encrypted | 5 | 5.00 |" in results
    enc = md.split("### Cost of encryption (scenario x)", 1)[1]
    assert ("| **x-backup-fs** full backup, encrypted vs not, fs:// | 2.00, 1.00, 120 | 2.20, 1.30, 130 | "
            "1.10x | 1.30x |") in enc
    assert ("| **x-restore-s3** full restore, encrypted vs not, s3:// | 4.00, 1.00, 90 | 5.00, 1.40, 95 | "
            "1.25x | 1.40x |") in enc
