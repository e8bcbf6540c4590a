"""Stored results: the records, the README's results table and the model cards are generated
from results/*.json, and the committed ones must be up to date."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fetalhead.cards import (
    README_MARKERS,
    REVIEW_MARKERS,
    REVIEW_TEXT_MARKERS,
    current_results,
    model_card,
    readme_with_table,
    review_table,
    storage_text,
)
from fetalhead.errors import FetalheadError
from fetalhead.evaluate import summary_table
from fetalhead.paths import PACKAGE_DIR, SHIPPED_MODELS, repo_root
from fetalhead.results import kept_epoch, load_results, results_record, results_table, write_results

ROOT = repo_root()


def _df(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "filename": [f"{i:03d}_HC.png" for i in range(n)], "exam": np.arange(n) // 2,
        "ellipse_dice": rng.uniform(0.95, 0.99, n), "dice": rng.uniform(0.9, 0.99, n),
        "hc_abs_error_mm": rng.uniform(0, 3, n), "hc_error_mm": rng.normal(0, 2, n),
        "status": ["ok"] * (n - 1) + ["no head found"]})
    df.loc[n - 1, ["hc_abs_error_mm", "hc_error_mm"]] = np.nan
    return df


def test_a_record_round_trips_and_fills_the_table(tmp_path):
    df = _df()
    table = summary_table(df, n_boot=200)
    rec = results_record(df, table, model="small", part="test", tta=True, command="fetalhead evaluate",
                         trained_on="GPU X")
    write_results(rec, tmp_path / "small_test.json")
    (back,) = load_results(tmp_path)
    assert back == json.loads(json.dumps(rec))
    assert back["n_images"] == 12 and back["n_exams"] == 6 and back["n_no_head"] == 1
    assert back["metrics"]["hc_abs_error_mm"]["n"] == 11
    assert back["metrics"]["dice"]["mean"] == pytest.approx(df["dice"].mean())
    md = results_table([back])
    row = md.splitlines()[2]
    assert row.startswith("| small + flips | GPU X | 12 / 6 |")
    assert f"{100 * df['dice'].mean():.2f} [" in row and f"{df['hc_abs_error_mm'].mean():.2f} [" in row
    assert results_table([back], part="val").count("\n") == 1  # header only
    other = {**back, "model": "runs/old/best.pt"}  # a checkpoint that is not shipped: not in the table
    assert results_table([back, other]).count("\n") == 2


def test_the_kept_epoch_is_the_checkpoints_own_not_the_best_of_the_history():
    # epoch 3 beats epoch 2 by less than min_delta, so training kept the weights of epoch 2
    hist = pd.DataFrame({"epoch": [1, 2, 3], "val_dice": [0.90, 0.97910, 0.97915], "seconds": [10.0, 20.0, 30.0]})
    assert kept_epoch(hist, 2)["epoch"] == 2 and kept_epoch(hist, 2)["seconds"] == 20.0
    assert kept_epoch(hist)["epoch"] == 3  # no epoch known: the highest validation Dice
    assert kept_epoch(hist, 9)["epoch"] == 3  # an epoch the history lacks: the same


def test_a_metric_without_any_value_is_stored_as_null_and_shown_as_a_dash(tmp_path):
    df = _df(4)
    df["hc_error_mm"] = np.nan  # no head measured anywhere: no HC figure at all
    rec = results_record(df, summary_table(df, n_boot=50), model="small", part="test", tta=False, command="c")
    text = json.dumps(rec, allow_nan=False)  # strict JSON: no NaN literal
    assert json.loads(text)["metrics"]["hc_error_mm"]["mean"] is None
    assert "| - |" in results_table([rec])


def test_a_dice_equal_to_the_target_reaches_it(monkeypatch):
    import fetalhead.results as results

    hist = pd.DataFrame({"epoch": [1, 2, 3], "val_dice": [0.5, 0.97, 0.98], "seconds": [10.0, 20.0, 30.0]})
    monkeypatch.setattr(results, "training_run", lambda run: ({"machine": "m"}, hist))
    assert results.training_summary("r_30s", target=0.97).endswith("validation Dice 0.97 after 20 s (epoch 2)")


def test_the_card_reports_the_epoch_its_weights_file_names(monkeypatch):
    """A later epoch better by less than min_delta did not replace the kept weights: the card
    quotes the weights' own epoch (2), not the history's best (3)."""
    import fetalhead.cards as cards
    import fetalhead.checkpoint as checkpoint
    from fetalhead.config import get_config

    cfg = get_config("small", quick=False)
    hist = pd.DataFrame({"epoch": [1, 2, 3], "val_dice": [0.9, 0.97910, 0.97915], "seconds": [10.0, 20.0, 30.0]})
    monkeypatch.setattr(checkpoint, "load_checkpoint",
                        lambda path: (None, cfg, {"training_run": "plain_30s", "epoch": 2}))
    monkeypatch.setattr(cards, "training_run",
                        lambda run: ({"machine": "m", "command": "c", "date": "d"}, hist))
    monkeypatch.setattr(cards, "review_limitation", lambda folder=None: "- review")
    monkeypatch.setattr(cards, "threshold_rule", lambda model, review_below: "a rule")
    card = " ".join(model_card("small", records=[]).split())
    assert "the weights shipped are those of epoch 2 (20 s), validation Dice 0.9791 " in card


def test_the_review_table_leaves_out_records_with_flips():
    flag = {"n_images": 10, "n_review": 1, "fraction_set_aside": 0.1, "n_gross": 1, "gross_caught": 1,
            "hc_abs_error_mm_all": 2.0, "hc_abs_error_mm_kept": 1.0, "hc_abs_error_mm_kept_ci": [0.5, 1.5],
            "hc_abs_error_mm_oracle": 0.9, "review_below": 0.5}
    records = [{"model": SHIPPED_MODELS[0], "part": "test", "tta": tta, "review_flag": flag} for tta in (False, True)]
    rows = review_table(records).splitlines()[2:]
    assert len(rows) == 1 and "flips" not in rows[0]


def test_markers_in_the_wrong_order_are_a_one_line_error():
    from fetalhead.cards import _between
    from fetalhead.errors import FetalheadError

    start, end = README_MARKERS
    with pytest.raises(FetalheadError, match="lacks the lines"):
        _between(f"a\n{end}\nb\n{start}\nc\n", README_MARKERS, "table")
    assert _between(f"a\n{start}\nold\n{end}\nc\n", README_MARKERS, "new") == f"a\n{start}\nnew\n{end}\nc\n"


def test_the_review_table_shows_each_shipped_models_flag():
    flag = {"n_images": 160, "n_review": 12, "fraction_set_aside": 0.075, "n_gross": 6, "gross_caught": 4,
            "hc_abs_error_mm_all": 2.3, "hc_abs_error_mm_kept": 1.9, "hc_abs_error_mm_kept_ci": [1.6, 2.2],
            "hc_abs_error_mm_oracle": 1.5, "review_below": 0.79}
    records = [{"model": m, "part": part, "tta": False, "review_flag": flag}
               for m in reversed(SHIPPED_MODELS) for part in ("val", "test")]
    records.append({"model": "other", "part": "test", "tta": False, "review_flag": flag})
    rows = review_table(records).splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == [f"| {m}" for m in SHIPPED_MODELS]  # best first, test only
    assert rows[0] == f"| {SHIPPED_MODELS[0]} | 0.79 | 7.5 % (12 of 160) | 4 of 6 | 2.30 | 1.90 [1.60, 2.20] | 1.50 |"


@pytest.mark.skipif(ROOT is None, reason="not a checkout")
def test_the_readme_table_is_generated_from_the_stored_results():
    readme = (ROOT / "README.md").read_text()
    assert all(m in readme for m in README_MARKERS + REVIEW_MARKERS + REVIEW_TEXT_MARKERS)
    assert readme_with_table(readme) == readme, "run `fetalhead cards`"
    for rec in current_results():
        if rec["part"] == "test":
            assert f"{100 * rec['metrics']['dice']['mean']:.2f} [" in readme


@pytest.mark.skipif(ROOT is None, reason="not a checkout")
def test_tables_and_cards_hold_the_shipped_weights_own_results_only():
    """A record of weights shipped earlier under the same model name (another training run, or
    none recorded) stays out of the README's tables and the model card."""
    records = current_results()
    assert records, "the shipped weights need results records that name their training run"
    test = next(r for r in records if r["part"] == "test" and not r["tta"])
    metrics = {**test["metrics"], "dice": {**test["metrics"]["dice"], "mean": 0.12345}}
    flag = {**test["review_flag"], "n_review": 99}
    older = [{**test, "training_run": run, "metrics": metrics, "review_flag": flag} for run in ("an_older_run", None)]
    readme = readme_with_table((ROOT / "README.md").read_text(), records + older)
    card = model_card(test["model"], records + older)
    for text in (readme, card):
        assert "12.35 [" not in text and "(99 of" not in text
        assert f"{100 * test['metrics']['dice']['mean']:.2f} [" in text


def test_training_summary_names_the_kept_epoch_and_seen_validation(monkeypatch):
    import fetalhead.results as results

    hist = pd.DataFrame({"epoch": [1, 2, 3], "val_dice": [0.5, 0.975, 0.97], "seconds": [10.0, 20.0, 30.0]})
    record = {"machine": "a CPU (2 threads)"}
    monkeypatch.setattr(results, "training_run", lambda run: (record, hist))
    line = results.training_summary("plain_30s")
    assert line.startswith("`plain_30s` on a CPU: 3 epochs in 30 s; kept weights: validation Dice 0.9750 at epoch 2 (20 s)")
    assert line.endswith("validation Dice 0.97 after 20 s (epoch 2)")
    assert "0.9700 at epoch 3" in results.training_summary("plain_30s", epoch=3)
    record["recipe_run"] = "chooser"  # refit on train + val: its validation images were seen
    assert "validation Dice (on images it trained on) 0.9700 at epoch 3" in results.training_summary("x", epoch=3)
    record["shared_with"] = 3  # three other runs trained on the same device at the same time
    assert results.training_summary("plain_30s").startswith("`plain_30s` on a CPU shared with 3 other runs: 3 epochs")


def test_refit_weights_take_their_validation_rows_from_the_run_that_chose_the_recipe(monkeypatch):
    """Weights trained on train + val have no held-out validation figures: their validation
    records are those of the train-only run that chose the recipe; their own test records count."""
    import fetalhead.cards as cards

    monkeypatch.setattr(cards, "shipped_runs", lambda: {"small": ("refit", 300), "default": ("plain", 12)})
    monkeypatch.setattr(cards, "recipe_run", {"refit": "chooser", "plain": None}.get)
    records = [{"model": m, "part": p, "training_run": run, "tta": False}
               for m in ("small", "default") for p in ("val", "test") for run in ("refit", "chooser", "plain")]
    kept = {(r["model"], r["part"], r["training_run"]) for r in cards.current_results(records)}
    assert kept == {("small", "val", "chooser"), ("small", "test", "refit"),
                    ("default", "val", "plain"), ("default", "test", "plain")}


@pytest.mark.parametrize("parts, record", [("train+val", {}), ("train", {"recipe_run": "chooser"})])
def test_a_card_refuses_a_refit_its_run_record_does_not_describe(monkeypatch, parts, record):
    """Weights trained on train + val need the run that chose their recipe named in runs.json
    (their validation rows come from it), and only they may name one."""
    import fetalhead.cards as cards
    import fetalhead.checkpoint as checkpoint
    from fetalhead.config import get_config
    from fetalhead.errors import FetalheadError

    cfg = get_config("small", quick=False, train_parts=parts)
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path: (None, cfg, {"training_run": "refit"}))
    monkeypatch.setattr(cards, "training_run", lambda run: ({"machine": "m", **record}, pd.DataFrame()))
    with pytest.raises(FetalheadError, match="recipe_run"):
        model_card("small")


@pytest.mark.skipif(ROOT is None, reason="not a checkout")
@pytest.mark.parametrize("model", SHIPPED_MODELS)
def test_model_cards_are_up_to_date(model):
    weights = PACKAGE_DIR / "weights" / f"fetalhead_{model}.pt"
    if not weights.is_file():
        pytest.skip(f"{weights.name} is not shipped")
    card = weights.with_suffix(".md").read_text()
    assert card == model_card(model), "run `fetalhead cards`"
    flat = " ".join(card.lower().replace("*", "").split())
    assert "not a medical device" in flat and "held-out test part" in flat
    from fetalhead.checkpoint import load_checkpoint

    if load_checkpoint(weights)[1].train_parts == "train+val":  # a refit says so, and whose validation rows it shows
        assert "trained on the train and validation parts" in flat and "measured on images it trained on" in flat
        assert "its rows are of run" in flat


@pytest.mark.skipif(ROOT is None, reason="not a checkout")
def test_shipped_models_are_ordered_by_their_validation_results():
    """`SHIPPED_MODELS` is best first: the lowest HC mean absolute difference on the
    validation part (never the test part) among the stored results."""
    val = {r["model"]: r["metrics"]["hc_abs_error_mm"]["mean"] for r in current_results()
           if r["part"] == "val" and not r["tta"]}
    shipped = [m for m in SHIPPED_MODELS if (PACKAGE_DIR / "weights" / f"fetalhead_{m}.pt").is_file()]
    assert set(shipped) <= set(val), "every shipped model needs results/<model>_val.json"
    assert shipped == sorted(shipped, key=val.get)


def test_the_recorded_commit_is_dirty_for_code_changes_only(tmp_path, monkeypatch):
    import subprocess

    import fetalhead.results as results

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    for name in ("code.py", "README.md", "results/small_val.json"):
        (tmp_path / name).write_text("1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    monkeypatch.setattr(results, "repo_root", lambda: tmp_path)
    assert not results._commit().endswith("-dirty")
    (tmp_path / "results/small_val.json").write_text("2\n")  # a stored result being rewritten
    (tmp_path / "README.md").write_text("2\n")
    assert not results._commit().endswith("-dirty")
    (tmp_path / "code.py").write_text("2\n")
    assert results._commit().endswith("-dirty")


def test_fetalhead_cards_rewrites_stale_cards_and_tables(tmp_path):
    from fetalhead.cards import write_all

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "fetalhead_small.pt").symlink_to(PACKAGE_DIR / "weights" / "fetalhead_small.pt")
    (weights / "fetalhead_small.md").write_text("stale card\n")
    readme = tmp_path / "README.md"
    real = (repo_root() / "README.md").read_text()
    start, end = README_MARKERS
    i, j = real.index(start) + len(start), real.index(end)
    readme.write_text(real[:i] + "\nstale table\n" + real[j:])
    written = write_all(weights, readme)
    assert written == [weights / "fetalhead_small.md", readme]
    assert (weights / "fetalhead_small.md").read_text() == model_card("small")
    assert "stale table" not in readme.read_text()
    assert readme.read_text() == readme_with_table(real)


def test_the_cards_command_calls_write_all(monkeypatch, capsys, tmp_path):
    from fetalhead import cli, commands

    monkeypatch.setattr(commands, "write_all", lambda: [tmp_path / "card.md"])
    assert cli.main(["cards"]) == 0
    assert f"wrote {tmp_path / 'card.md'}" in capsys.readouterr().out


def test_a_readme_without_the_table_markers_is_a_one_line_error_and_stays_as_it_was(tmp_path, capsys,
                                                                                     monkeypatch):
    from fetalhead import cards, cli, commands

    readme = tmp_path / "README.md"
    readme.write_text("# my notes\n")
    monkeypatch.setattr(commands, "write_all", lambda: cards.write_all(tmp_path / "weights", readme))
    assert cli.main(["cards"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fetalhead: error: the README lacks") and err.count("\n") == 1
    assert readme.read_text() == "# my notes\n"


def test_a_new_results_file_is_checked_before_the_work(tmp_path):
    from fetalhead.results import check_new_results

    check_new_results(tmp_path / "new" / "r.json")  # a missing folder is made when writing
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(FetalheadError, match="exists; choose another name"):
        check_new_results(tmp_path / "r.json")
    with pytest.raises(FetalheadError, match="cannot create --results .*is a file, not a folder"):
        check_new_results(tmp_path / "r.json" / "x.json")


def test_a_stored_record_that_is_not_json_is_a_one_line_error_naming_it(tmp_path):
    (tmp_path / "a_val.json").write_text('{"model": "small", ')  # cut short
    with pytest.raises(FetalheadError, match=r"a_val.json: not valid JSON \(Expecting"):
        load_results(tmp_path)


def test_a_stored_record_lacking_a_field_is_a_one_line_error_of_the_cards_command(tmp_path, capsys,
                                                                                   monkeypatch):
    from fetalhead import cards, cli, commands

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "fetalhead_small.pt").symlink_to(PACKAGE_DIR / "weights" / "fetalhead_small.pt")
    monkeypatch.setattr(cards, "load_results", lambda: [{"part": "val"}])  # no "model"
    monkeypatch.setattr(commands, "write_all", lambda: cards.write_all(weights, tmp_path / "README.md"))
    assert cli.main(["cards"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fetalhead: error: the stored results") and err.count("\n") == 1, err
    assert not (weights / "fetalhead_small.md").exists()


def test_the_card_names_a_per_image_loss_weighting():
    from fetalhead.cards import _image_weighting
    from fetalhead.config import get_config

    assert _image_weighting(get_config("small", quick=False, pixel_size_weight=0.0)) == ""
    assert "pixel size (mm) to the power 1" in _image_weighting(get_config("small", quick=False))
    assert "to the power 2" in _image_weighting(get_config("small", quick=False, pixel_size_weight=2.0))


def test_the_card_names_weight_averaging():
    from fetalhead.cards import _averaging
    from fetalhead.config import get_config

    assert _averaging(get_config("small", quick=False, ema_decay=0.0)) == ""
    assert "moving average (decay 0.999 per step)" in _averaging(get_config("small", quick=False))
    assert "decay 0.99 per step" in _averaging(get_config("small", quick=False, ema_decay=0.99))


def test_the_card_names_a_coarse_start():
    from fetalhead.cards import _coarse_phase
    from fetalhead.config import get_config

    assert _coarse_phase(get_config("small", quick=False)) == ""
    text = _coarse_phase(get_config("small", quick=False, coarse_fraction=0.5))
    assert "first 50 % of the run" in text and "downscaled 2x (96x144 px), the rest at 192x288" in text


def test_the_card_names_training_crops():
    from fetalhead.cards import _crops
    from fetalhead.config import get_config

    assert _crops(get_config("small", quick=False)) == ""
    assert "random 144x224 px crop" in _crops(get_config("small", quick=False, crop_size=(144, 224)))


def test_the_storage_line_quotes_the_fp16_figures_only_for_int8_weights(tmp_path, monkeypatch):
    from fetalhead import cards

    monkeypatch.setattr(cards, "RESULTS_DIR", tmp_path)
    assert storage_text("m", "float16", 3 * 2**20) == "Weights in fp16: 3.0 MiB; read back as fp32."
    alone = storage_text("m", "int8", 2**20)
    assert alone.startswith("Weights in int8 (one scale per channel") and "fp16 file" not in alone
    (tmp_path / "quantization").mkdir()
    record = {"metrics": {"ellipse_dice": {"mean": 0.97851}, "hc_abs_error_mm": {"mean": 1.7683}}}
    (tmp_path / "quantization" / "m_fp16_val.json").write_text(json.dumps(record))
    text = storage_text("m", "int8", 2**20)
    assert "97.85 %" in text and "1.77 mm" in text and "results/quantization/m_fp16_val.json" in text
    assert storage_text("m", "float16", 2**20) == "Weights in fp16: 1.0 MiB; read back as fp32."


@pytest.mark.skipif(ROOT is None, reason="not a checkout")
def test_the_stored_latency_measures_the_shipped_weights():
    """The README's latency table and the cards' latency lines come from benchmarks/latency_cpu.json:
    it must hold a row for every shipped model, measured on those weights (run, width, size)."""
    from fetalhead.checkpoint import load_checkpoint

    rows = json.loads((ROOT / "benchmarks" / "latency_cpu.json").read_text())["models"]
    shipped = [m for m in SHIPPED_MODELS if (PACKAGE_DIR / "weights" / f"fetalhead_{m}.pt").is_file()]
    assert list(rows) == shipped, "run `fetalhead bench --latency-only --out benchmarks/latency_cpu.json --overwrite`"
    for model in shipped:
        _, cfg, meta = load_checkpoint(PACKAGE_DIR / "weights" / f"fetalhead_{model}.pt")
        row = rows[model]["cpu"]
        assert (row["training_run"], row["base_channels"], row["image_size"]) == (
            meta["training_run"], cfg.base_channels, list(cfg.image_size)), f"{model}: re-measure its latency"
        assert f"{row['predict_ms']:.1f} ms for `Predictor.predict`" in model_card(model)


def test_the_stored_robustness_results_measure_the_shipped_weights():
    """The README quotes results/robustness/ (frames of other shapes, video codecs) per shipped
    model: each file must have measured the weights shipped now, so a model shipped later
    fails here until they are measured again (each file names its command)."""
    from fetalhead.checkpoint import load_checkpoint

    files = sorted((ROOT / "results" / "robustness").glob("*.json"))
    assert files
    stale = []
    for path in files:
        record = json.loads(path.read_text())
        model = next((m for m in SHIPPED_MODELS if f"_{m}_" in path.name), None)
        assert model is not None, f"{path.name} names no shipped model"
        run = load_checkpoint(PACKAGE_DIR / "weights" / f"fetalhead_{model}.pt")[2]["training_run"]
        if record["model"] != run:
            stale.append(f"{path.name} measured {record['model']}, not {run}: remove it, then {record['command']}")
    assert not stale, "; ".join(stale)


def _recorded_weights(record: dict) -> list[str]:
    """The training runs a stored review record names for the tables it read: its "weights"
    ({table name: run}, or one run for its one table) and each check's "weights"."""
    named = record.get("weights", {})
    runs = [named] if isinstance(named, str) else list(named.values())
    return runs + [c["weights"] for c in record.get("checks", {}).values() if "weights" in c]


def test_the_stored_review_results_measure_the_shipped_weights():
    """The README and the cards quote results/review/ records made from shipped models' tables
    of `fetalhead evaluate` or `predict` (the frame --frame best keeps, the second opinion, the
    HC interval's coverage, the review threshold's calibration): each must name the weights of
    every table it read, and those must be shipped now."""
    from fetalhead.checkpoint import load_checkpoint

    shipped = {load_checkpoint(PACKAGE_DIR / "weights" / f"fetalhead_{m}.pt")[2]["training_run"]
               for m in SHIPPED_MODELS if (PACKAGE_DIR / "weights" / f"fetalhead_{m}.pt").is_file()}
    review = ROOT / "results" / "review"
    files = [review / "best_frame.json", review / "hc_interval_small.json", *sorted(review.glob("second_opinion_*.json")),
             *sorted(review.glob("calibration_*.json"))]
    stale = []
    for path in files:
        record = json.loads(path.read_text())
        # best_frame: its "tables"; hc_interval: its "checks"; second_opinion: "rows" and "other";
        # calibration: its "predictions"
        tables = (1 if "predictions" in record
                  else len(record.get("tables", record.get("checks", {"rows": 1, "other": 1}))))
        runs = _recorded_weights(record)
        assert len(runs) == tables, f"{path.name}: names the weights of {len(runs)} of its {tables} tables"
        if not set(runs) <= shipped:
            stale.append(f"{path.name} measured {', '.join(sorted(set(runs) - shipped))}: remove it, then "
                         f"{record['command']} (after fetalhead evaluate of each table)")
    assert not stale, "; ".join(stale)


def test_the_card_quotes_the_hc_interval_of_its_own_model(tmp_path):
    import json

    from fetalhead.cards import interval_text
    from fetalhead.paths import repo_root

    file = repo_root() / "results" / "review" / "hc_interval_small.json"
    stored = json.loads(file.read_text())
    text = " ".join(interval_text("default", file).split())
    c = stored["checks"]["default_test"]
    assert text.startswith("## HC interval") and f"HC +- {stored['factor']:.3f} x (pixel size" in text
    assert (f"for {c['n_inside']} of {c['n']} images ({100 * c['coverage']:.1f} % "
            f"[{100 * c['coverage_ci'][0]:.1f}, {100 * c['coverage_ci'][1]:.1f}]") in text
    assert f"flagged for review, {c['by_status']['review']['n_inside']} of 24." in text
    without = tmp_path / "results" / "review" / "i.json"
    without.parent.mkdir(parents=True)
    without.write_text(json.dumps({**stored, "checks": {"small_test": stored["checks"]["small_test"]}}))
    assert interval_text("default", without) == "" and interval_text("default", tmp_path / "none.json") == ""


def _diameter_metrics(bpd: float) -> dict:
    cell = lambda mean: {"mean": mean, "ci_low": mean - 0.1, "ci_high": mean + 0.1, "median": mean,  # noqa: E731
                         "std": 1.0, "n": 160, "n_exams": 121}
    return {"bpd_abs_error_mm": cell(bpd), "bpd_error_mm": cell(-0.25), "ofd_abs_error_mm": cell(1.5),
            "ofd_error_mm": cell(0.5), "cephalic_index_abs_error": cell(2.0)}


def test_the_diameter_table_shows_each_shipped_models_test_diameters():
    from fetalhead.cards import diameter_table

    records = [{"model": m, "part": part, "tta": tta, "metrics": _diameter_metrics(0.7 + i / 10)}
               for i, m in enumerate(reversed(SHIPPED_MODELS)) for part in ("val", "test") for tta in (False, True)]
    records.append({"model": SHIPPED_MODELS[0], "part": "test", "tta": False, "metrics": {}})  # from before
    rows = diameter_table(records).splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == [f"| {m}" for m in SHIPPED_MODELS]  # best first, test, no flips
    bpd = 0.7 + (len(SHIPPED_MODELS) - 1) / 10
    assert rows[0] == (f"| {SHIPPED_MODELS[0]} | 160 | {bpd:.2f} [{bpd - 0.1:.2f}, {bpd + 0.1:.2f}] | -0.25 [-0.35, -0.15] "
                       "| 1.50 [1.40, 1.60] | 0.50 [0.40, 0.60] | 2.00 [1.90, 2.10] |")
    assert diameter_table([r for r in records if not r["metrics"]]) == ""


def test_the_card_has_a_diameter_section_only_when_its_records_score_them():
    from fetalhead.cards import diameter_text

    text = diameter_text([{"part": "test", "tta": False, "metrics": _diameter_metrics(0.76)}])
    assert text.startswith("\n## Head diameters\n") and "| test | 160 | 0.76 [0.66, 0.86] |" in text
    assert diameter_text([{"part": "val", "tta": False, "metrics": {}}]) == ""


@pytest.mark.skipif(ROOT is None, reason="not a checkout")
def test_the_readme_quotes_the_shipped_models_stored_diameters():
    from fetalhead.cards import DIAMETER_MARKERS

    readme = (ROOT / "README.md").read_text()
    body = readme[readme.index(DIAMETER_MARKERS[0]):readme.index(DIAMETER_MARKERS[1])]
    for rec in current_results():
        if rec["part"] == "test" and not rec["tta"]:
            m = rec["metrics"]["bpd_abs_error_mm"]
            assert f"| {rec['model']} | {m['n']} | {m['mean']:.2f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}] |" in body


def test_a_card_names_the_run_of_its_rows_flagged_at_another_threshold():
    """A card's review rows at a threshold other than its weights' come from another run: the
    card says which (the validation rows of a refit model are of the run that chose its recipe)."""
    from fetalhead.checkpoint import load_checkpoint
    from fetalhead.paths import shipped_checkpoint

    for model in SHIPPED_MODELS:
        shipped = load_checkpoint(shipped_checkpoint(model))[2].get("review_below")
        others = {r["training_run"] for r in current_results(load_results())
                  if r["model"] == model and r.get("review_flag") and r["review_flag"]["review_below"] != shipped}
        card = " ".join(model_card(model).split())
        assert ("The rows at another threshold" in card) == bool(others), model
        assert all(f"`{run}`" in card.split("The rows at another threshold")[-1] for run in others), model


def test_a_benchmark_ratio_is_split_into_model_size_and_flops_achieved():
    from fetalhead.cards import _bench_note

    ref = {"train_flops_per_image": 1.2e12, "achieved_flops": 60e12, "precision": "fp32", "mfu": 0.06}
    default = {"train_flops_per_image": 0.3e12, "achieved_flops": 90e12, "precision": "bf16", "mfu": 0.09}
    note = _bench_note("GPU X", "572x572", ref, default)
    assert "needs 4.0x fewer FLOPs per training image (0.30 against 1.20 TFLOP)" in note
    assert "achieves 1.50x the FLOP/s (90 against 60 TFLOP/s)" in note
    assert "against that peak its MFU is 12.0 %" in note  # twice the bf16-peak figure
    plain = _bench_note("GPU X", "572x572", {**ref, "tf32_convolutions": False}, default)
    assert "TF32" not in plain
