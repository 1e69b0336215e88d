"""The few-step study end to end on smoke settings: a rectified flow, one reflow on its pairs and
the one-step distillation, sampled at NFE 1 / 2 / 4, with the report's table and figure; then
sampled again from the saved runs."""

import json

from experiments.few_step.main import main


def test_the_study_trains_reflows_distills_and_reports(tmp_path):
    main(["--smoke", "--methods", "fm,rf2,distill", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "results.json").read_text())
    got = {(r["method"], r["sampler"], r["nfe"]) for r in res["records"]}
    assert {("fm", "euler", 1), ("fm", "heun", 2), ("fm", "heun", 4), ("rf2", "euler", 4)} <= got
    assert {r[:2] for r in got if r[0] == "distill"} == {("distill", "euler")}  # one step only
    assert all(r["quality"] > 0 and r["wall_s"] > 0 for r in res["records"])
    assert res["nll"]["distill"]["nll"] is None and res["nll"]["fm"]["nll"] > 0  # no density for a one-step map
    report = (tmp_path / "report.md").read_text()
    assert "| rf2 | euler |" in report and "none (no density)" in report
    assert (tmp_path / "few_step.png").stat().st_size > 0
    # the reflow trained on fm's pairs, drawn by data.name = pairs:<fm's run folder>
    saved = json.loads((tmp_path / "runs" / "rf2" / "config.json").read_text())
    assert saved["data"]["name"] == f"pairs:{tmp_path / 'runs' / 'fm'}"
    # --reuse samples the trained models again without training
    main(["--smoke", "--methods", "fm,rf2,distill", "--out", str(tmp_path), "--reuse"])
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["nll"]["fm"]["train_s"] == res["nll"]["fm"]["train_s"]
    assert [r["quality"] for r in again["records"]] == [r["quality"] for r in res["records"]]
