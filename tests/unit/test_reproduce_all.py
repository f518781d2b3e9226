"""examples/reproduce/all.sh, the one command behind every reproduction row: its queue on
rows files whose commands are small shell snippets (order, needs, failures, the LANES bound
counting rows that already run in other processes, resuming), its errors, and that the
shipped rows.txt names existing recipes."""

import os
import subprocess
import time

from conftest import REPO, SUBPROCESS_ENV

ALL = REPO / "examples" / "reproduce" / "all.sh"


def run_all(tmp_path, rows, *args, **env):
    rows_file = tmp_path / "rows.txt"
    rows_file.write_text(rows)
    env = dict(SUBPROCESS_ENV, RUNS=str(tmp_path / "runs"), ROWS_FILE=str(rows_file), POLL="0.1", README_TABLE="",
               R=str(tmp_path / "runs"), **env)  # fmt: skip
    return subprocess.run(["bash", str(ALL), *args], env=env, capture_output=True, text=True, timeout=120)


# a row that records when it ran and whether what it needs was done by then, then finishes
def row_cmd(name, needs=""):
    check = f'test -f "$R/{needs}/recipe.done" && echo needs-done >> "$R/{name}/trace"; ' if needs else ""
    return (f'mkdir -p "$R/{name}" && date +%s.%N >> "$R/{name}/trace" && {check}sleep 0.3 && '
            f'date +%s.%N >> "$R/{name}/trace" && date > "$R/{name}/recipe.done"')


def trace(tmp_path, name):
    return (tmp_path / "runs" / name / "trace").read_text().split()


def test_rows_run_in_order_after_what_they_need_and_a_failure_stops_only_its_dependents(tmp_path):
    rows = "\n".join([
        "# comment lines and blank lines are skipped",
        "",
        f"a  -  1  {row_cmd('a')}",
        f"b  a  1  {row_cmd('b', 'a')}",
        "c  -  1  echo boom; exit 3",
        f"d  c  2  {row_cmd('d')}",
        "e  -  1  echo ran e",  # ends 0 without recipe.done: a failure, not a loop
    ]) + "\n"  # fmt: skip
    proc = run_all(tmp_path, rows)
    assert proc.returncode == 1 and proc.stderr == "", proc.stdout + proc.stderr
    runs = tmp_path / "runs"
    assert "needs-done" in trace(tmp_path, "b")  # b started only once a was done
    assert (runs / "c.out").read_text() == "boom\n" and (runs / "e.out").read_text() == "ran e\n"
    assert not (runs / "d").exists()  # c failed, so d never started
    summary = [line.split("] ", 1)[1] for line in proc.stdout.splitlines() if "] all: " in line][1:]
    assert summary == ["all: a: done", "all: b: done", "all: c: failed (status 3)", "all: d: not started, needs c",
                       "all: e: failed (status 1)"]  # fmt: skip
    assert "e: the command ended without writing" in proc.stdout

    # the same command again: a and b are done and skipped, the failed rows are retried
    again = run_all(tmp_path, rows)
    assert again.returncode == 1
    assert len(trace(tmp_path, "a")) == 2 and (runs / "c.out").read_text() == "boom\nboom\n"
    assert "lane 1: a:" not in again.stdout and "lane 2: a:" not in again.stdout

    listing = run_all(tmp_path, rows, "--list")
    assert listing.returncode == 0
    states = {line.split()[0]: line.split()[1] for line in listing.stdout.splitlines()[1:]}
    assert states == {"a": "done", "b": "done", "c": "failed", "d": "not", "e": "failed"}


def test_a_claim_left_by_a_dead_lane_does_not_block_its_row(tmp_path):
    """Claims name the lane's PID and start time: after a reboot a claim's PID may belong to an
    unrelated live process (here: this test's own), which must not count as the lane."""
    claims = tmp_path / "runs" / ".all" / "claims"
    claims.mkdir(parents=True)
    (claims / "a").write_text(f"{os.getpid()} Thu Jan 1 00:00:00 2026\n")
    (claims / "b").write_text(f"{os.getpid()}\n")  # the older format: PID alone
    proc = run_all(tmp_path, f"a  -  1  {row_cmd('a')}\nb  -  1  {row_cmd('b')}\n", LANES="1")
    assert proc.returncode == 0 and proc.stderr == "", proc.stdout + proc.stderr
    assert len(trace(tmp_path, "a")) == 2 and len(trace(tmp_path, "b")) == 2


def test_a_row_can_wait_for_one_stage_of_another(tmp_path):
    """NEEDS ROW:STAGE waits for RUNS/ROW/STAGE.done only, not for the whole row."""
    a = ('mkdir -p "$R/a" && sleep 0.3 && date > "$R/a/first.done" && sleep 1.5 && date +%s.%N > "$R/a/end" && '
         'date > "$R/a/recipe.done"')  # fmt: skip
    proc = run_all(tmp_path, f"a  -  1  {a}\nb  a:first  1  {row_cmd('b', 'a')}\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    b_start = float(trace(tmp_path, "b")[0])
    assert b_start < float((tmp_path / "runs" / "a" / "end").read_text())  # before a finished
    assert (tmp_path / "runs" / "a" / "first.done").stat().st_mtime <= b_start
    assert "needs-done" not in trace(tmp_path, "b")
    unknown = run_all(tmp_path, "a  -  1  true\nb  c:first  1  true\n")
    assert unknown.returncode == 2 and "row b needs 'c:first', which is not a row of that file" in unknown.stderr


HELD_RECIPE = """source "$COMMON"
run_stage first "$RUNS/p" bash -c 'echo first ran'
run_stage second "$RUNS/p" bash -c 'echo second ran'
"""


def test_a_row_held_before_a_stage_gives_its_lane_to_the_next_rows(tmp_path):
    """RUNS/ROW/hold_before naming a stage: the recipe (common.sh's run_stage) stops before it with
    no recipe.done; all.sh moves the lane on to the next row, leaves the held row and the rows
    that need it (a need on an earlier stage of it is met), and says so; once the file is gone,
    the same command runs the held stage and what waited for it."""
    recipe = tmp_path / "recipe_p.sh"
    recipe.write_text(HELD_RECIPE)
    runs = tmp_path / "runs"
    (runs / "p").mkdir(parents=True)
    (runs / "p" / "hold_before").write_text("second the other rows first\n")
    rows = (f"p  -  1  bash {recipe}\nq  p  1  {row_cmd('q', 'p')}\nr  -  1  {row_cmd('r')}\n"
            f"s  p:first  1  {row_cmd('s')}\n")  # fmt: skip
    common = str(REPO / "examples" / "reproduce" / "common.sh")
    proc = run_all(tmp_path, rows, LANES="1", COMMON=common)
    assert proc.returncode == 1 and proc.stderr == "", proc.stdout + proc.stderr
    out = (runs / "p.out").read_text()
    assert "first ran" in (runs / "p" / "first.log").read_text() and not (runs / "p" / "second.log").exists()
    assert f"second: held before it by {runs}/p/hold_before (second the other rows first)" in out
    assert (runs / "p" / "held").read_text().split()[0] == "second" and not (runs / "p" / "recipe.done").exists()
    assert f"lane 1: p: held before second ({runs}/p/hold_before: second the other rows first); the lane moves on" in proc.stdout
    summary = [line.split("] ", 1)[1] for line in proc.stdout.splitlines() if "] all: " in line][1:]
    assert summary == ["all: p: held before second", "all: q: not started, needs p", "all: r: done", "all: s: done"]
    assert not (runs / "q").exists() and "failed" not in proc.stdout
    listing = run_all(tmp_path, rows, "--list", COMMON=common)
    assert listing.stdout.splitlines()[1].split()[:4] == ["p", "held", "before", "second"]
    # released: the held stage runs, then the row that needed the whole row
    (runs / "p" / "hold_before").unlink()
    again = run_all(tmp_path, rows, LANES="1", COMMON=common)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "second ran" in (runs / "p" / "second.log").read_text() and (runs / "p" / "recipe.done").exists()
    assert not (runs / "p" / "held").exists() and "needs-done" in trace(tmp_path, "q")


def test_a_row_is_listed_as_stopped_only_once_its_recipe_has_begun(tmp_path):
    """A run directory holding only files put there beforehand (the authors' code cloned into
    RUNS/davam_ptb_authors_code/src) is not a stopped run; one where a recipe recorded its command
    (track_row's recipe_command.txt) is."""
    runs = tmp_path / "runs"
    (runs / "prepared" / "src").mkdir(parents=True)
    (runs / "begun").mkdir(parents=True)
    (runs / "begun" / "recipe_command.txt").write_text("examples/reproduce/x.sh\n")
    rows = f"prepared  -  1  {row_cmd('prepared')}\nbegun  -  1  {row_cmd('begun')}\n"
    listing = run_all(tmp_path, rows, "--list")
    states = {line.split()[0]: " ".join(line.split()[1:-2]) for line in listing.stdout.splitlines()[1:]}
    assert states == {"prepared": "not started", "begun": "stopped"}, listing.stdout


def test_a_finished_committed_row_whose_run_directory_is_gone_is_not_trained_again(tmp_path):
    """After a machine change lost RUNS, a row whose finished result is committed (RESULTS/ROW.json,
    status finished) counts as done; one that a row still to run needs runs again (its files are
    gone); an unfinished committed row, or one named on the command line, runs as usual."""
    results = tmp_path / "results"
    results.mkdir()
    for name, status in [("kept", "finished"), ("lm", "finished"), ("base", "finished"), ("partial", "stage2 (interrupted)")]:
        (results / f"{name}.json").write_text(f'{{"row": "{name}", "status": "{status}"}}\n')
    (results / "broken.json").write_text("{not json")
    # a figure row's JSON (a sweep, a table: no "row", no "status") counts too, unless partial
    (results / "figure.json").write_text('{"setting": "--num-codes", "values": [8], "runs": {}}\n')
    (results / "sweep.json").write_text('{"values": [8], "runs": {}, "values_planned": [8, 16], "complete": false}\n')
    rows = "\n".join([
        f"kept     -   1  {row_cmd('kept')}",
        f"base     -   1  {row_cmd('base')}",
        f"lm       base  1  {row_cmd('lm', 'base')}",  # committed, but needed by vae: runs, and so does base
        f"vae      lm  1  {row_cmd('vae', 'lm')}",
        f"partial  -   1  {row_cmd('partial')}",
        f"broken   -   1  {row_cmd('broken')}",
        f"figure   -   1  {row_cmd('figure')}",
        f"sweep    -   1  {row_cmd('sweep')}",
    ]) + "\n"  # fmt: skip
    listing = run_all(tmp_path, rows, "--list", RESULTS=str(results))
    states = {line.split()[0]: " ".join(line.split()[1:-2]) for line in listing.stdout.splitlines()[1:]}
    assert states == {"kept": f"done in {results}/kept.json", "base": "not started", "lm": "not started",
                      "vae": "not started", "partial": "not started", "broken": "not started",
                      "figure": f"done in {results}/figure.json", "sweep": "not started"}, listing.stdout  # fmt: skip

    proc = run_all(tmp_path, rows, RESULTS=str(results))
    assert proc.returncode == 0 and proc.stderr == "", proc.stdout + proc.stderr
    runs = tmp_path / "runs"
    assert not (runs / "kept").exists() and "lane 1: kept:" not in proc.stdout and "lane 2: kept:" not in proc.stdout
    assert not (runs / "figure").exists()
    for name in ["base", "lm", "vae", "partial", "broken", "sweep"]:
        assert (runs / name / "recipe.done").is_file(), name
    assert "needs-done" in trace(tmp_path, "lm") and "needs-done" in trace(tmp_path, "vae")
    assert f"all: kept: done in {results}/kept.json" in proc.stdout

    # named on the command line, it trains again
    named = run_all(tmp_path, rows, "kept", RESULTS=str(results))
    assert named.returncode == 0 and (runs / "kept" / "recipe.done").is_file(), named.stdout + named.stderr


def test_a_row_running_in_another_process_counts_against_lanes_and_is_not_started_twice(tmp_path):
    runs = tmp_path / "runs"
    (runs / "x").mkdir(parents=True)
    # "x" trained by hand: a process with the row's directory in its command line
    outside = subprocess.Popen(["bash", "-c", f'sleep 1.5; date +%s.%N > {runs}/x/ended; date > {runs}/x/recipe.done'
                                f" # {runs}/x/"])  # fmt: skip
    try:
        rows = f"x  -  1  echo started x twice\ny  -  1  {row_cmd('y')}\n"
        proc = run_all(tmp_path, rows, LANES="1")
    finally:
        outside.wait(timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (runs / "x.out").exists()
    assert float(trace(tmp_path, "y")[0]) >= float((runs / "x" / "ended").read_text())  # y waited for the lane

    # two lanes: y runs beside a row that runs elsewhere, z waits for it
    (runs / "y" / "recipe.done").unlink()
    outside = subprocess.Popen(["bash", "-c", f"sleep 1.5; date > {runs}/w/recipe.done # {runs}/w/"])
    (runs / "w").mkdir()
    try:
        rows = f"w  -  1  echo no\ny  -  1  {row_cmd('y')}\nz  -  1  {row_cmd('z')}\n"
        started = time.time()
        proc = run_all(tmp_path, rows, LANES="2")
    finally:
        outside.wait(timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    y_start, z_start = float(trace(tmp_path, "y")[2]), float(trace(tmp_path, "z")[0])
    assert y_start < started + 1.2 and z_start >= float(trace(tmp_path, "y")[3])


def test_stopping_the_command_stops_its_rows_and_the_next_run_goes_on(tmp_path):
    """SIGTERM (or Ctrl-C) to all.sh ends the rows it runs: its lanes run in the background,
    where they would ignore Ctrl-C and keep training unseen. Nothing is marked failed."""
    runs = tmp_path / "runs"
    marker = f"{os.getpid() % 1000:03d}{time.time_ns() % 997:03d}"  # sleep 31.<marker>: a sleep of ours alone
    rows_file = tmp_path / "rows.txt"
    rows_file.write_text(f"a  -  1  sleep 31.{marker}\nb  -  1  sleep 32.{marker}\n")
    env = dict(SUBPROCESS_ENV, RUNS=str(runs), ROWS_FILE=str(rows_file), POLL="0.1", README_TABLE="")
    proc = subprocess.Popen(["bash", str(ALL)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while subprocess.run(["pgrep", "-f", f"sleep 3[12].{marker}"], capture_output=True).stdout.count(b"\n") < 2:
            assert time.time() < deadline, "the rows did not start"
            time.sleep(0.1)
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    finally:
        subprocess.run(["pkill", "-f", f"sleep 3[12].{marker}"])
    assert proc.returncode == 130 and "all: stopped by a signal" in out
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-f", f"sleep 3[12].{marker}"]).returncode == 1  # no row left running
    assert not (runs / ".all" / "failed").exists()


def test_each_lane_sees_only_its_own_gpu(tmp_path):
    rows = "".join(f'{r}  -  1  sleep 0.5; mkdir -p "$R/{r}"; echo "$CUDA_VISIBLE_DEVICES" > "$R/{r}/gpu"; date > "$R/{r}/recipe.done"\n'
                   for r in "abc")  # fmt: skip
    proc = run_all(tmp_path, rows, GPUS="3,5")  # LANES defaults to the number of GPUs
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gpus = [(tmp_path / "runs" / r / "gpu").read_text().strip() for r in "abc"]
    assert sorted(gpus[:2]) == ["3", "5"] and gpus[2] in ("3", "5")  # a and b ran at once, one per GPU
    assert "(GPU 3)" in proc.stdout and "(GPU 5)" in proc.stdout


def test_bad_input_is_one_line_naming_what_to_fix(tmp_path):
    good = f"a  -  1  {row_cmd('a')}\nb  a  1  {row_cmd('b', 'a')}\n"
    cases = [
        (good, ["nope"], "error: unknown row 'nope' (the rows: a b; --list)"),
        (good, ["b"], "error: row b needs a, which is not done: name a too"),
        ("a  -  1\n", [], f"error: {tmp_path}/rows.txt:1: expected NAME NEEDS HOURS COMMAND, got 'a  -  1'"),
        ("a  -  x  true\n", [], f"error: {tmp_path}/rows.txt:1: HOURS must be a number, got 'x'"),
        ("a  q  1  true\n", [], f"error: {tmp_path}/rows.txt: row a needs 'q', which is not a row of that file"),
        ("a  -  1  true\na  -  1  true\n", [], f"error: {tmp_path}/rows.txt:2: row a is listed twice"),
        (good, ["--list", "a"], "error: --list takes no rows"),
    ]
    for rows, args, message in cases:
        proc = run_all(tmp_path, rows, *args)
        assert proc.returncode == 2 and proc.stdout == "" and proc.stderr == message + "\n", (args, proc.stderr)
    for env, message in [({"LANES": "0"}, "LANES must be a positive integer, got '0'"),
                         ({"GPUS": "0,x"}, "GPUS must be comma-separated GPU indices, got '0,x'"),
                         ({"GPUS": "0", "LANES": "2"}, "LANES=2 is more than the 1 GPUs in GPUS=0")]:  # fmt: skip
        proc = run_all(tmp_path, good, **env)
        assert proc.returncode == 2 and proc.stderr == f"error: {message}\n", proc.stderr
    assert not (tmp_path / "runs").exists()


def test_the_shipped_rows_name_existing_recipes_and_rows(tmp_path):
    env = dict(SUBPROCESS_ENV, RUNS=str(tmp_path / "runs"), RESULTS=str(tmp_path / "results"))  # no results yet
    proc = subprocess.run(["bash", str(ALL), "--list"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines()[1:]]
    assert {"davam_ptb_k512", "davam_ptb_k512_fast", "awd_ptb_none", "awd_ptb_uniform", "awd_ptb_adversarial",
            "lstm_lm_ptb", "davam_ptb_k_sweep", "dynamics_ptb", "snli_augment"} <= set(listed)  # fmt: skip
    assert all(" not started " in line for line in proc.stdout.splitlines()[1:])
    for line in (REPO / "examples" / "reproduce" / "rows.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _needs, _hours, *command = line.split()
        while "=" in command[0]:  # the recipe's settings, VAR=VALUE before the script
            assert command[0].split("=")[0].isupper(), command
            command.pop(0)
        script, *rest = command
        assert os.access(REPO / script, os.X_OK), script
        if "results.py" in rest:
            assert rest[-1] == name  # the row's own results
