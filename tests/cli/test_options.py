"""The shared options of ``python main.py`` (cli/options.py): parsed once, one-line errors, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import typer

from cli.options import Store, parse_date, parse_folder, parse_ids, parse_store
from cli.output import money, num, pct

ROOT = Path(__file__).resolve().parents[2]


def test_parsers_return_values_and_fail_with_exit_code_2(tmp_path, capsys):
    assert parse_date("--as-of")("2020-03-16") == date(2020, 3, 16)
    assert parse_ids("--strategies")(" a, b,,a ") == ["a", "b"]
    assert parse_folder("--data-dir")(str(tmp_path)) == tmp_path
    assert parse_store((Store.memory, Store.emulator))("EMULATOR") is Store.emulator
    for parse, value, message in [
        (parse_date("--start"), "2021-02-30", "--start '2021-02-30' is not a date (YYYY-MM-DD)"),
        (parse_ids("--strategies"), " , ", "--strategies is empty"),
        (parse_folder("--data-dir"), str(tmp_path / "nope"), "is not a folder (it does not exist)"),
        (parse_store((Store.memory,)), "firestore", "--store firestore is not available here: memory"),
        (parse_store((Store.memory,)), "s3", "--store 's3' is not a store: memory"),
    ]:
        with pytest.raises(typer.Exit) as exc:
            parse(value)
        assert exc.value.exit_code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_number_formats():
    assert (pct(0.0123), pct(None), num(1.234), num(1234.5678, ".6g"), money(12345.6), money(1.5, 2)) == \
        ("+1.23%", "-", "1.23", "1234.57", "12,346", "1.50")


@pytest.mark.parametrize("args, message", [
    (["run", "--as-of", "16/03/2020"], "--as-of '16/03/2020' is not a date"),
    (["run", "--store", "s3"], "--store 's3' is not a store: emulator | firestore | memory"),
    (["run", "--config", "no/such/folder"], "--config 'no/such/folder' is not a folder"),
    (["backtest", "--start", "2021-03-01", "--end", "2021-13-01"], "--end '2021-13-01' is not a date"),
    (["backtest", "--start", "2021-03-01", "--end", "2021-03-02", "--strategies", ","], "--strategies is empty"),
    (["backtest", "--start", "2021-03-01", "--end", "2021-03-02", "--store", "firestore"],
     "--store firestore is not for backtests"),
    (["backtest", "--start", "2021-03-01", "--end", "2021-03-02", "--data-dir", "no/such/folder"],
     "--data-dir 'no/such/folder' is not a folder"),
    (["workflow", "run", "--strategies", " "], "--strategies is empty"),
    (["journal", "llm_x", "--store", "memory"], "--store memory keeps nothing"),
])
def test_bad_shared_options_are_one_line_and_exit_2(args, message):
    r = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and message in r.stderr, r.stderr
