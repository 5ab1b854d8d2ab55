"""``swift-ext convert`` / ``validate`` / ``mix``: thin wrappers over :mod:`swift_ext.convert`."""

from __future__ import annotations

import contextlib
import sys

import click

from ._common import console, echo_json

#: ``convert``'s flags are :class:`~swift_ext.convert.ConvertOptions` fields by name, except these (field: flag,
#: negated or renamed) and the flags that are not conversion settings (a test checks the three agree)
CONVERT_RENAMED = {"check_media": "no_check_media", "require_solution": "allow_no_solution",
                   "reject_path": "reject_file"}
CONVERT_CLI_ONLY = ("input", "output", "as_json")
#: ``validate``'s flags are :class:`~swift_ext.convert.ValidateOptions` fields by name, except these negated ones
#: (field: flag) and the CLI-only ones (a test checks the three agree)
VALIDATE_NEGATED = {"check_media": "no_check_media", "duplicates": "no_duplicates"}
VALIDATE_CLI_ONLY = ("input", "as_json")
#: ``mix``'s flags are :class:`~swift_ext.convert.MixOptions` fields by name, and these (a test checks)
MIX_CLI_ONLY = ("sources", "output", "as_json")


@contextlib.contextmanager
def _stops(what: str):
    """SIGTERM / SIGHUP (Slurm pre-emption, a closed terminal) and SIGINT stop the command cleanly: the
    temporary files are deleted on the way out, and the exit status is 128 + the signal (SIGINT 130,
    SIGTERM 143, SIGHUP 129), as a shell reports a process the signal killed."""
    from ..io import exit_code, signals_raise

    try:
        with signals_raise():
            yield
    except KeyboardInterrupt as exc:
        console.print(f"[yellow]{what} stopped ({exc or 'SIGINT'})[/]: nothing written, temporary files removed")
        raise SystemExit(exit_code(exc)) from None


def _formats_help() -> str:
    return ("swift, query_response, sharegpt, llava, alpaca, rlaif_v, trl_preference, prompt_answer, verl "
            "(or a plugin's)")


def register(cli):
    @cli.command("convert")
    @click.argument("input", type=click.Path(exists=True))
    @click.option("--to", "to", required=True, help="Target: sft, grpo, dpo, kto, trl, mcq, judge (or a plugin's).")
    @click.option("-o", "--output", required=True, type=click.Path(), help="Output .jsonl (or .json for an array).")
    @click.option("--from", "src", default=None, help=f"Input format (default: detected). {_formats_help()}.")
    @click.option("--extract", default=None,
                  help="Reference answer extraction (grpo/mcq/judge): auto, answer_tag, boxed, last_number, "
                       "last_letter, none.")
    @click.option("--negatives", default=None,
                  help="Rule-based DPO/KTO negatives when the input has none: auto or a comma list of "
                       "bbox, json, option_letter, number, truncate.")
    @click.option("--completions", type=click.Path(exists=True), default=None,
                  help="JSONL of sampled completions per prompt (e.g. swift infer output): best vs worst by --reward.")
    @click.option("--reward", default=None, help="swift-ext reward spec ranking --completions, e.g. "
                                                 "exact_match:extract=last_number.")
    @click.option("--seed", default=0, show_default=True, type=int, help="Seed of negatives and rewrites.")
    @click.option("--choices", "n_choices", default=4, show_default=True, type=int, help="mcq: number of options.")
    @click.option("--allow-no-solution", is_flag=True, help="grpo: keep rows without a reference answer.")
    @click.option("--reject-file", default=None, type=click.Path(),
                  help="Where rejected rows go (default: OUTPUT.rejected.jsonl).")
    @click.option("--strict", is_flag=True, help="Stop at the first bad row (nothing is written).")
    @click.option("--media-dir", default=None, type=click.Path(), help="Write bytes/base64 images here as files.")
    @click.option("--root", default=None, type=click.Path(),
                  help="Base of relative media paths (ROOT_IMAGE_DIR); media paths must resolve (symlinks followed) "
                       "inside it.")
    @click.option("--allow-outside-root", is_flag=True, help="--root only as the base: media may lie outside it.")
    @click.option("--media-paths", type=click.Choice(["keep", "absolute", "relative"]), default="keep",
                  show_default=True, help="Write media paths as given, absolute, or relative to the output's folder.")
    @click.option("--no-check-media", is_flag=True,
                  help="Do not check media paths (existence, and --root confinement).")
    @click.option("--split", default=None, help="Split of a saved DatasetDict (default: train).")
    @click.option("--num-proc", default=None, type=int, help="Convert in N processes with datasets.Dataset.map.")
    @click.option("--tools", default=None, metavar="TOOL,...",
                  help="grpo/sft: write each row's 'tools' column (the tools' JSON schemas, as ms-swift's agent "
                       "templates read them) for these agent tools, e.g. python,calculator,zoom.")
    @click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
    def convert_cmd(input, to, output, src, extract, negatives, completions, reward, seed, n_choices,
                    allow_no_solution, reject_file, strict, media_dir, root, allow_outside_root, media_paths,
                    no_check_media, split, num_proc, tools, as_json):
        """Convert INPUT (JSONL, JSON array, Parquet, or a datasets folder) to an ms-swift / TRL training format.

        \b
        Examples:
          swift-ext convert sft.jsonl --to grpo --extract last_number -o grpo.jsonl
          swift-ext convert sharegpt.json --to dpo --negatives auto --seed 1 -o dpo.jsonl
          swift-ext convert sft.jsonl --to dpo --completions sampled.jsonl --reward exact_match -o dpo.jsonl
          swift-ext convert rlaif.parquet --to dpo --media-dir images/ -o dpo.jsonl
          swift-ext convert vqa.jsonl --to grpo --tools zoom -o zoom-agent.jsonl

        Bad rows go to the reject file with file, line and reason; the summary shows
        rows in = converted + rejected. Every row written passes `swift-ext validate --task TARGET`
        (a row that would not is rejected with validate's message). Outputs are written atomically.
        Exit code 1 when no row was converted (then no output file is written); 130 / 143 / 129 when
        stopped by SIGINT / SIGTERM / SIGHUP (nothing written).
        """
        from ..convert import ConvertOptions, convert_file, print_summary

        options = ConvertOptions(to=to, src=src, extract=extract, negatives=negatives, completions=completions,
                                 reward=reward, seed=seed, require_solution=not allow_no_solution, n_choices=n_choices,
                                 media_dir=media_dir, check_media=not no_check_media, root=root,
                                 allow_outside_root=allow_outside_root, media_paths=media_paths, split=split,
                                 num_proc=num_proc, strict=strict, reject_path=reject_file, tools=tools)
        with _stops("convert"):
            report = convert_file(input, output, options, show_progress=True)
        print_summary(report, console)
        if as_json:
            echo_json(report.to_dict())
        if not report.written:
            sys.exit(1)

    @cli.command("validate")
    @click.argument("input", type=click.Path(exists=True))
    @click.option("--task", type=click.Choice(["sft", "grpo", "dpo", "kto", "trl", "mcq", "judge"]), default=None,
                  help="Training task the file is for (default: inferred per row); a `convert --to` target name "
                       "checks that target's output.")
    @click.option("--from", "src", default=None, help="Input format (default: detected).")
    @click.option("--root", default=None, type=click.Path(),
                  help="Base of relative media paths (ROOT_IMAGE_DIR); media paths must resolve (symlinks followed) "
                       "inside it.")
    @click.option("--allow-outside-root", is_flag=True, help="--root only as the base: media may lie outside it.")
    @click.option("--decode-images", is_flag=True, help="Open every image with PIL (slow).")
    @click.option("--no-check-media", is_flag=True, help="Skip media path checks (--root confinement included).")
    @click.option("--no-duplicates", is_flag=True,
                  help="Skip duplicate detection (11-22 bytes of memory per row).")
    @click.option("--split", default=None, help="Split of a saved DatasetDict.")
    @click.option("--max-examples", default=5, show_default=True, type=int, help="Examples kept per check.")
    @click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON on stdout.")
    def validate_cmd(input, as_json, **flags):
        """Check a dataset for the mistakes ms-swift handles silently; exit code 1 when any row has an error.

        \b
        Examples:
          swift-ext validate grpo.jsonl --task grpo --root /data/images
          swift-ext validate dpo.jsonl --json > report.json
        """
        from ..convert.validate import ValidateOptions, print_report, validate_file

        flags.update({name: not flags.pop(flag) for name, flag in VALIDATE_NEGATED.items()})
        options = ValidateOptions(**flags)
        with _stops("validate"):
            report = validate_file(input, options, show_progress=True)
        print_report(report, console)
        if as_json:
            echo_json(report.to_dict())
        if not report.ok:
            sys.exit(1)

    @cli.command("mix")
    @click.argument("sources", nargs=-1, required=True)
    @click.option("-o", "--output", required=True, type=click.Path(), help="Mixed train file (.jsonl).")
    @click.option("--seed", default=0, show_default=True, type=int)
    @click.option("--val-ratio", default=0.0, show_default=True, type=float, help="Fraction held out for validation.")
    @click.option("--val-output", default=None, type=click.Path(), help="Validation file (default: OUTPUT.val.jsonl).")
    @click.option("--total", default=None, type=int, help="Rows in the mixture (default: the limiting source "
                                                          "is used whole).")
    @click.option("--upsample", is_flag=True, help="Allow repeating rows of a source that is too small.")
    @click.option("--reject-file", "reject_path", default=None, type=click.Path())
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
    def mix_cmd(sources, output, as_json, **flags):
        """Mix SOURCES given as PATH:RATIO (e.g. domain.jsonl:10 general.jsonl:1), deterministically.

        \b
        Example:
          swift-ext mix domain.jsonl:10 general.jsonl:1 -o mix.jsonl --val-ratio 0.05 --seed 0
        """
        from ..convert.mix import MixOptions, mix_files, print_mix

        options = MixOptions(**flags)
        with _stops("mix"):
            report = mix_files(list(sources), output, options, show_progress=True)
        print_mix(report, console)
        if as_json:
            echo_json(report.to_dict())
