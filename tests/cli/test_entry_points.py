"""Each console script as a user runs it, in a real process: a user error ends with exit status
2 and one `cadenza: error:` line, no traceback. (What each one does is tested in-process, as
the script runs it: tests.helpers.cli; cadenza-train's success path by the experiment sweep,
cadenza-eval's and cadenza-render's in their own tests, cadenza-serve's in tests/serve.)"""

from __future__ import annotations

import pytest

from tests.fixtures.midi_factory import write_broken_folder
from tests.fixtures.smoke import SmokeRuns
from tests.helpers import start_cli

# Each script's user error, started side by side (a process spends most of its ~5 s importing,
# one core each): script -> (arguments, what the one line must name).
CASES = {
    "cadenza-train": (["experiment=smoke", "model.hidden_size=abc", "logger=none"],
                      ["model.hidden_size", "abc"]),
    "cadenza-sample": (["ckpt_path=/no/such.ckpt", "out_dir={tmp}"], ["checkpoint not found"]),
    "cadenza-prepare": (["data=midi_folder", "data.root={tmp}/junk"], ["junk"]),
    "cadenza-recommend": (["ckpt={recommender}", "user=nobody"],
                          ["is not a listener this model knows"]),
    "cadenza-classify": (["ckpt={recommender}", "input={tmp}"], ["is not a classifier checkpoint"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def finished(smoke: SmokeRuns, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """script -> (exit status, stderr), each run from its own empty working directory."""
    fill = {"recommender": str(smoke["smoke_recommender"].ckpt)}
    running = {}
    for script, (args, _) in CASES.items():
        tmp = tmp_path_factory.mktemp(script)
        if script == "cadenza-prepare":
            write_broken_folder(tmp / "junk")
        argv = [a.format(tmp=tmp, **fill) for a in args]
        running[script] = (start_cli(script, *argv, cwd=tmp), tmp)
    return {script: (proc.wait(timeout=300), (tmp / "stderr.txt").read_text())
            for script, (proc, tmp) in running.items()}  # fmt: skip


@pytest.mark.parametrize("script", list(CASES))
def test_a_user_error_is_one_clear_line_and_exit_status_2(script: str, finished: dict) -> None:
    returncode, stderr = finished[script]
    assert returncode == 2, stderr[-2000:]
    assert "cadenza: error:" in stderr and "Traceback" not in stderr
    for m in CASES[script][1]:
        assert m in stderr


def test_a_key_not_in_the_config_gets_the_nearest_one(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The console script's own entry (@names_typos over @hydra.main), run in this process as
    its script runs it: the key that was meant in place of Hydra's report (whose advice is to
    append the typo with "+"), and exit status 2."""
    from hydra.core.global_hydra import GlobalHydra

    from cadenza.cli.sample import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["cadenza-sample", "ckpt_path=/no/such.ckpt",
                                     "temprature=0.9"])  # fmt: skip
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        GlobalHydra.instance().clear()
    stderr = capfd.readouterr().err
    assert exit_.value.code == 2, stderr
    hint = "cadenza: error: temprature is not in the config: did you mean temperature=0.9?"
    assert stderr == hint + "\n"


def test_hydras_report_is_held_only_while_it_may_be_replaced() -> None:
    """Around Hydra's main, stderr passes every write on at once (logs of a long run too),
    but holds Hydra's report of an override it could not apply: dropped for the hints, or
    written as it was when none is near."""
    import io

    from cadenza.cli.typos import _HoldsOverrideErrors

    out = io.StringIO()
    held = _HoldsOverrideErrors(out)
    held.write("[cadenza][INFO] - preparing\n")
    assert out.getvalue() == "[cadenza][INFO] - preparing\n"
    held.write("Could not override 'x'.\nTo append to your config use +x=1\n")
    held.write("Key 'x' is not in struct\n")
    assert out.getvalue() == "[cadenza][INFO] - preparing\n"
    held.release()
    assert out.getvalue().endswith("+x=1\nKey 'x' is not in struct\n")
