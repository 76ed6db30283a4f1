"""The main job: execute the six notebooks in order into runs/<name>/ and print the result.

    python -m helpers.demo [--run-name NAME] [--preset embedded] [--set KEY=VALUE ...]

Each notebook runs in a fresh kernel (papermill), with RUN_NAME, PRESET and RESUME = False
(a demo trains afresh; notebook 04's own default continues a run) injected after its
parameters cell; `--set` injects more parameters into every notebook that declares them
(e.g. `--set MAX_STEPS=2`, `--set RESUME=auto`). Executed notebooks are saved in
runs/<name>/notebooks/. `make demo` runs this with the defaults (runs/demo/);
`make demo-hindi` with `--preset embedded-hindi` (runs/demo-hindi/).
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

from helpers.files import REPO_ROOT
from helpers.run import RunDir

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
RUN_NAMES = {"embedded": "demo", "embedded-hindi": "demo-hindi"}  # default run per preset


def default_run_name(preset: str) -> str:
    """The run directory name a preset's demo uses: demo, demo-hindi, else demo-<preset>."""
    return RUN_NAMES.get(preset, f"demo-{preset}")


def notebook_paths() -> list[Path]:
    """The numbered notebooks, in order."""
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in a notebook's `parameters` cell."""
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return {target.id for node in tree.body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)}
    raise ValueError(f"{notebook}: no cell tagged 'parameters'")


def run_notebook(notebook: Path, run: RunDir, parameters: dict, timeout: int | None = 1800,
                 echo: bool = True) -> Path:
    """Execute one notebook with the parameters it declares; returns the executed copy's path.

    timeout: seconds one cell may run (None: no limit; see RunConfig.cell_timeout).
    echo: what the notebook's cells print (e.g. notebook 04's line per logging step) also
    goes to this process's stdout/stderr, indented, so a headless run shows its progress.
    """
    from helpers.colab import require_package

    require_package("papermill", "running the notebooks from a command")
    import papermill

    accepted = {key: value for key, value in parameters.items() if key in declared_parameters(notebook)}
    output = run.file(f"notebooks/{notebook.name}")
    papermill.execute_notebook(str(notebook), str(output), parameters=accepted,
                               cwd=str(NOTEBOOK_DIR), kernel_name="python3",
                               execution_timeout=timeout, progress_bar=False,
                               stdout_file=_Indented(sys.stdout) if echo else None,
                               stderr_file=_Indented(sys.stderr) if echo else None,
                               kernel_manager_class=ipc_kernel_manager())
    return output


def ipc_kernel_manager():
    """A Jupyter kernel manager whose kernels talk over Unix sockets instead of TCP ports.

    Local sockets cannot be reached from another machine, and the kernel then has no reason
    to print ipykernel's "running over TCP without encryption" warning at every start.
    """
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    class IpcKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

    return IpcKernelManager


class _Indented:
    """A write-only text stream that indents each line it passes on to `stream`."""

    def __init__(self, stream):
        self.stream, self.at_line_start = stream, True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):
            if self.at_line_start:
                self.stream.write("    ")
            self.stream.write(piece)
            self.at_line_start = piece.endswith(("\n", "\r"))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def run_all(run_name: str = "demo", preset: str = "embedded", extra: dict | None = None,
            runs_root=None, notebooks: list[Path] | None = None) -> RunDir:
    """Execute the notebooks in order into one run directory; returns it.

    Each cell may run for the preset's `cell_timeout` seconds (none for the blog presets,
    whose training cell takes hours).
    """
    from helpers.config import make_config

    run = RunDir(run_name, runs_root)
    timeout = make_config(preset).cell_timeout
    # The folder this process resolved, passed on: the kernels then use the same run directory
    # even where their default would differ (a kernel on Colab defaults to Google Drive).
    parameters = {"RUN_NAME": run_name, "PRESET": preset, "RESUME": False, **(extra or {}),
                  "RUNS_ROOT": str(run.path.parent)}
    for notebook in notebooks or notebook_paths():
        started = time.perf_counter()
        print(f"running {notebook.name} ...", flush=True)
        run_notebook(notebook, run, parameters, timeout)
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    return run


def summary_lines(metrics: dict) -> list[str]:
    """The comparison table printed at the end of the demo (script share when measured:
    the share of letters in the reference's script, see helpers.metrics.script_share)."""
    script = metrics.get("base_script_share") is not None
    header = f"{'':12}{'WER':>8}{'CER':>8}{'raw WER':>9}{'loops':>7}" + (f"{'script':>8}" if script else "")
    rows = []
    for label, key in (("base", "base"), ("fine-tuned", "finetuned")):
        row = (f"{label:12}{metrics[f'{key}_wer']:8.1%}{metrics[f'{key}_cer']:8.1%}"
               f"{metrics[f'raw_{key}_wer']:9.1%}{metrics.get(f'{key}_loops', '-'):>7}")
        if script:
            share = metrics.get(f"{key}_script_share")
            row += f"{share:8.1%}" if share is not None else f"{'-':>8}"
        rows.append(row)
    footer = (f"test clips: {metrics['n_test']}, training steps: {metrics['train_steps']} in "
              f"{metrics['train_seconds']:.0f} s, adapter: {metrics['adapter_bytes'] / 2**20:.1f} MiB, "
              f"trainable: {metrics['trainable_params']:,} of {metrics['total_params']:,} params")
    return [header, *rows, footer]


def parse_assignments(pairs: list[str]) -> dict:
    """KEY=VALUE strings -> dict, values parsed as Python literals when possible."""
    result = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            result[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            result[key] = value
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the demo and print the comparison table."""
    parser = argparse.ArgumentParser(prog="python -m helpers.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--run-name", help="runs/<name>/ (default: demo for the embedded "
                        "preset, demo-hindi for embedded-hindi)")
    parser.add_argument("--preset", default="embedded")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    run_name = args.run_name or default_run_name(args.preset)
    run = run_all(run_name, args.preset, parse_assignments(args.set))
    print("\n".join(summary_lines(run.metrics())))
    print(f"results in {run.path} (metrics.json, plots/, adapter/); "
          f"wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
