r"""Reproduces the paper's Table 3 (parameter counts) from the manifest entries.

  python experiments/table3_parameters.py [--output=experiments/table3_parameters.md]

Builds each Table 3 model (full size, 1280x1280; nothing is trained) exactly
as its manifest entry configures it, counts total and trainable parameters
and writes a markdown table beside the paper's numbers.
"""
import pathlib
import time

from absl import app
from absl import flags
import yaml

from backbone_reuse.tools import count_parameters

REPO = pathlib.Path(__file__).resolve().parents[1]
_OUTPUT = flags.DEFINE_string(
    'output', str(REPO / 'experiments' / 'table3_parameters.md'),
    'Markdown table to write.')


def main(_):
  entries = yaml.safe_load(
      (REPO / 'experiments' / 'paper_tables.yaml').read_text())
  rows = []
  for entry in (e for e in entries if e['table'] == 'Table 3'):
    start = time.time()
    counts = count_parameters.count_experiment(
        entry['experiment'], entry['config_files'],
        entry.get('params_override', ''), root=str(REPO))
    paper = entry['paper']
    modules = ', '.join(
        f"{name} {module['trainable'] / 1e6:.2f}"
        for name, module in counts['modules'].items() if module['trainable'])
    rows.append(
        f"| {entry['row']} | {paper['total_params_m']} | "
        f"{counts['total_params'] / 1e6:.1f} | {paper['trained_params_m']} "
        f"({paper['trained_percent']}%) | "
        f"{counts['trainable_params'] / 1e6:.1f} "
        f"({counts['trainable_percent']:.1f}%) | {modules} |")
    print(f"{entry['id']}: built and counted in {time.time() - start:.0f}s")
  text = '\n'.join([
      '# Table 3: parameters of frozen-backbone ResNet-101 detectors (millions)',
      '',
      'Produced by `python experiments/table3_parameters.py` from the '
      'Table 3 entries of `experiments/paper_tables.yaml`. "Total" counts '
      'every variable (BatchNorm statistics included); "trained" counts '
      'trainable variables; "ours trained, by module" splits the latter.',
      '',
      '| Detector | Paper total | Ours total | Paper trained | Ours trained '
      '| Ours trained, by module |',
      '|---|---|---|---|---|---|',
      *rows, ''])
  pathlib.Path(_OUTPUT.value).write_text(text)
  print(text)


if __name__ == '__main__':
  app.run(main)
