"""Every command in the README and docs/ parses: flags that exist, values of the right type.

The shell blocks (```bash) of README.md and docs/*.md are read as a user would paste them:
line continuations joined, comments, redirections and pipes dropped, ``for X in a b; do``
loops expanded with their first value, ``$PWD`` the repository root. Each command then goes
through the parser of the program it names, without running it:

* ``fairseq-train``, ``-generate``, ``-validate``, ``-interactive``, ``-preprocess``: fairseq's
  own parser with the plugin's task, model and criterion options (an unknown or misspelt flag
  is an error, as it is for the user);
* ``fairseq-hydra-train``: hydra composes the named config with the overrides, and fairseq's
  dataclasses of the chosen task, model, criterion, optimizer... check every key;
* ``davam-*``: the console script's own parser (``davam-sweep``: also the fairseq-train
  arguments after ``--`` with the swept setting);
* scripts named by path (``examples/...``, ``scripts/...``) must exist, ``make`` targets too.

Training, data and checkpoints are not touched: paths need not exist.
"""

import glob
import importlib
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

import davam_plugin  # noqa: F401  (registers the plugin's components)

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = str(REPO / "davam_plugin")
DOCS = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(str(REPO / "docs" / "*.md")))

BLOCK = re.compile(r"^([ \t]*)```(?:bash|sh)[ \t]*\n(.*?)^[ \t]*```", re.M | re.S)
REDIRECT = re.compile(r"(?<!\S)\d*(?:>>?|<)(?:&\d+|\s*[^\s;|&]+)")
SEPARATORS = {";", "|", "||", "&", "&&"}


def shell_blocks(doc):
    """(line number, text) of each ```bash block of ``doc``."""
    text = (REPO / doc).read_text()
    for m in BLOCK.finditer(text):
        indent = len(m.group(1))
        lines = [line[indent:] if line[:indent].isspace() else line for line in m.group(2).splitlines()]
        yield text.count("\n", 0, m.start(2)) + 1, "\n".join(lines)


def split_commands(block):
    """The simple commands of a shell block, as argv lists (loops expanded with the first value)."""
    variables = {"PWD": str(REPO)}
    block = block.replace("\\\n", " ")
    for line in block.splitlines():
        line = REDIRECT.sub(" ", line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";|&")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = []
        for token in list(lexer) + [";"]:
            if token not in SEPARATORS:
                words.append(token)
                continue
            if words and words[0] == "for" and len(words) >= 4 and words[2] == "in":
                variables[words[1]] = words[3]
            elif words and words[0] not in ("done",):
                if words[0] == "do":
                    words = words[1:]
                if words:
                    yield [expand(w, variables) for w in words]
            words = []


def expand(word, variables):
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), word)


def program_and_args(argv):
    """Drop environment assignments and wrappers (``OMP_NUM_THREADS=1``, ``nohup``, ``time``)."""
    while argv and (re.match(r"^\w+=", argv[0]) or argv[0] in ("nohup", "time", "exec")):
        argv = argv[1:]
    return (argv[0], argv[1:]) if argv else (None, [])


def documented_commands():
    for doc in DOCS:
        for lineno, block in shell_blocks(doc):
            for argv in split_commands(block):
                program, args = program_and_args(argv)
                if program is not None:
                    yield pytest.param(program, args, id=f"{doc}:{lineno}:{program}")


COMMANDS = list(documented_commands())


# ---------------------------------------------------------------- parsers


def with_plugin_dir(args):
    """``--user-dir davam_plugin`` names the checkout's plugin (fairseq resolves it from cwd)."""
    args = list(args)
    for i, a in enumerate(args[:-1]):
        if a == "--user-dir":
            assert args[i + 1].rstrip("/").endswith("davam_plugin"), f"--user-dir {args[i + 1]}"
            args[i + 1] = PLUGIN_DIR
    return args


def parse_fairseq(program, args):
    from fairseq import options

    builders = {
        "fairseq-train": options.get_training_parser,
        "fairseq-generate": options.get_generation_parser,
        "fairseq-validate": options.get_validation_parser,
        "fairseq-interactive": options.get_interactive_generation_parser,
        "fairseq-preprocess": options.get_preprocessing_parser,
    }
    args = with_plugin_dir(args)
    argv, sys.argv = sys.argv, [program] + args  # fairseq's get_parser() reads --user-dir from sys.argv
    try:
        parser = builders[program]()
        if program == "fairseq-preprocess":
            parser.parse_args(args)
        else:
            options.parse_args_and_arch(parser, args)
    finally:
        sys.argv = argv


def parse_hydra(args):
    from fairseq.dataclass.initialize import add_defaults, hydra_init
    from hydra import compose, initialize_config_dir
    from hydra import version as hydra_version
    from hydra.core.global_hydra import GlobalHydra

    own, overrides, i = {}, [], 0
    while i < len(args):
        if args[i] in ("--config-dir", "--config-name"):
            own[args[i]] = args[i + 1]
            i += 2
        else:
            overrides.append(args[i])
            i += 1
    config_dir = REPO / own["--config-dir"]
    name = own["--config-name"]
    assert (config_dir / f"{name}.yaml").is_file(), f"no config {config_dir / name}.yaml"
    hydra_init(name)
    GlobalHydra.instance().clear()
    # hydra's version base is process-global; fairseq's own hydra calls (hydra.experimental,
    # used by later tests in this worker) need the 1.1 base that fairseq-hydra-train runs with
    base = hydra_version.VersionBase.instance().version_base
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.1"):
            cfg = compose(config_name=name, overrides=[o for o in overrides if not o.startswith("hydra.")])
    finally:
        hydra_version.VersionBase.instance().version_base = base  # as it was (possibly unset)
        GlobalHydra.instance().clear()
    add_defaults(cfg)  # merges each component's dataclass: an unknown key raises


def console_scripts():
    text = (REPO / "setup.py").read_text()
    return dict(re.findall(r'"(davam-[\w-]+) = ([\w.]+):main"', text))


def parse_davam(program, args):
    scripts = console_scripts()
    assert program in scripts, f"{program} is not a console script in setup.py"
    module = importlib.import_module(scripts[program])
    if program == "davam-sweep":
        own, train_args = module.split_argv(args)
        parsed = module.build_parser().parse_args(own)
        assert train_args, "davam-sweep needs the fairseq-train arguments after --"
        value = parsed.values.split(",")[0] if isinstance(parsed.values, str) else parsed.values[0]
        parse_fairseq("fairseq-train", [parsed.data] + train_args + [parsed.setting, str(value)])
    elif program == "davam-adversary-view":
        module.build_parser().parse_intermixed_args(args)
    elif hasattr(module, "parse_args"):
        module.parse_args(args)
    elif hasattr(module, "build_parser"):
        module.build_parser().parse_args(args)
    else:
        pytest.fail(f"{program}: its module has no build_parser() to check the arguments with")


def check_other(program, args):
    if program == "make":
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M)
        for t in args:
            assert t in targets, f"make {t}: no such target in the Makefile"
    elif program in ("bash", "sh", "python", "python3") and args and re.match(r"^(examples|scripts)/", args[0]):
        assert (REPO / args[0]).is_file(), f"{args[0]} does not exist"
    elif re.match(r"^(\./)?(examples|scripts)/", program):
        assert (REPO / program).is_file(), f"{program} does not exist"
        assert os.access(REPO / program, os.X_OK), f"{program} is not executable"


@pytest.mark.parametrize("program,args", COMMANDS)
def test_documented_command_parses(program, args, capsys):
    try:
        if program.startswith("fairseq-hydra-train"):
            parse_hydra(args)
        elif program.startswith("fairseq-"):
            parse_fairseq(program, args)
        elif program.startswith("davam-"):
            parse_davam(program, args)
        else:
            check_other(program, args)
    except SystemExit as e:  # argparse's error exit
        pytest.fail(f"{program} {' '.join(args)}\n-> exit {e.code}: {capsys.readouterr().err.strip()}")


def test_the_docs_hold_the_main_commands():
    """The extraction finds what the README shows (an empty list would pass everything)."""
    programs = {p.values[0] for p in COMMANDS if p.id.startswith("README.md")}
    assert {"fairseq-train", "fairseq-generate", "fairseq-hydra-train", "davam-evaluate", "make"} <= programs
    assert len(COMMANDS) > 40


def test_the_extraction_reads_shell_as_a_user_pastes_it():
    block = (
        "for MODE in adversarial uniform; do\n"
        "OMP_NUM_THREADS=1 fairseq-train data --x $MODE \\\n    --y ${MODE}_z > out.txt 2>&1  # a comment\n"
        "done\n"
        'echo "a b" | fairseq-interactive data --beam 5\n'
    )
    commands = [program_and_args(c) for c in split_commands(block)]
    assert commands == [
        ("fairseq-train", ["data", "--x", "adversarial", "--y", "adversarial_z"]),
        ("echo", ["a b"]),
        ("fairseq-interactive", ["data", "--beam", "5"]),
    ]


def test_parsing_leaves_fairseqs_hydra_usable():
    """fairseq's own hydra calls (hydra.experimental under the 1.1 version base) still work after
    a hydra command was parse-checked in this process (davam-augment's tests share a worker)."""
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq import options

    parse_hydra(["--config-dir", "examples/reproduce", "--config-name", "awd_ptb", "task.data=x"])
    args = options.parse_args_and_arch(options.get_training_parser(), ["data", "--task", "language_modeling", "--arch", "lstm_lm"])
    assert convert_namespace_to_omegaconf(args).task._name == "language_modeling"


def test_a_misspelt_flag_fails():
    with pytest.raises(SystemExit):
        parse_fairseq("fairseq-train", ["data", "--user-dir", "davam_plugin", "--task", "sentence_vae",
                                         "--arch", "davam_tiny", "--criterion", "davam", "--beta-maxx", "5"])
    with pytest.raises(Exception, match="word_dropout_modes"):
        parse_hydra(["--config-dir", "examples/reproduce", "--config-name", "awd_ptb", "task.data=x",
                     "model.word_dropout_modes=uniform"])
