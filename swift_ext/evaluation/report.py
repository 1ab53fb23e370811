"""Evaluation outputs in a directory: ``metrics.json``, ``metrics.md`` and PNG charts.

``results`` maps a model label (an adapter directory name such as ``global_lora_3``, or a result file stem) to the
dict of ``scoring.score``. When every label ends in a round number (``global_lora_{r}``) the overview chart is the
metric per round (``base`` is round 0); otherwise one bar group per label.
"""

import json
import os
import re
from typing import Dict, List, Mapping, Optional

#: overall metrics shown in the table and charts, with their column titles
HEADLINE = {
    'type_accuracy': 'type acc.',
    'step_success': 'step success',
    'episode_success': 'episode success',
    'tfidf_step_accuracy': 'TF-IDF>0.6 step',
    'tfidf_episode_accuracy': 'TF-IDF>0.6 episode',
}
_ROUND = re.compile(r'(\d+)$')


def label_round(label: str) -> Optional[int]:
    """The trailing round number of ``global_lora_12`` (12); 0 for ``base`` (the model before round 1); None
    otherwise."""
    if label == 'base':
        return 0
    match = _ROUND.search(label)
    return int(match.group(1)) if match else None


def markdown_table(results: Mapping[str, Mapping]) -> str:
    """One row per model: steps, episodes, unparseable, then HEADLINE metrics in percent; then step success per
    gold action type."""
    head = ['model', 'steps', 'episodes', 'unparseable', *HEADLINE.values()]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for label, result in results.items():
        overall = result['overall']
        cells = [label, overall['steps'], overall['episodes'], overall['unparseable']]
        cells += [f'{100 * overall[key]:.1f}' for key in HEADLINE]
        lines.append('| ' + ' | '.join(str(cell) for cell in cells) + ' |')
    types = sorted({t for result in results.values() for t in result['by_action_type']})
    lines += ['', 'Step success (%) per gold action type:', '', '| model | ' + ' | '.join(types) + ' |']
    lines.append('|' + '---|' * (len(types) + 1))
    for label, result in results.items():
        by_type = result['by_action_type']
        cells = [f'{100 * by_type[t]["step_success"]:.1f}' if t in by_type else '-' for t in types]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def _overview_chart(results: Mapping[str, Mapping], path: str) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    labels = list(results)
    rounds = [label_round(label) for label in labels]
    figure, axes = plt.subplots(figsize=(7, 4))
    if all(r is not None for r in rounds) and len(set(rounds)) == len(rounds):
        order = sorted(range(len(labels)), key=lambda i: rounds[i])
        for key, title in HEADLINE.items():
            values = [results[labels[i]]['overall'][key] for i in order]
            axes.plot([rounds[i] for i in order], values, 'o-', label=title)
        axes.set_xlabel('round')
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        width = 0.8 / len(HEADLINE)
        for j, (key, title) in enumerate(HEADLINE.items()):
            axes.bar([i + j * width for i in range(len(labels))], [results[x]['overall'][key] for x in labels],
                     width, label=title)  # fmt: skip
        axes.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, rotation=30, ha='right')
    _save_fraction_chart(figure, axes, 'fraction', path)


def _save_fraction_chart(figure, axes, ylabel: str, path: str) -> None:
    """Common finish of the charts: a 0..1 y axis with its label, the legend, and the PNG."""
    import matplotlib.pyplot as plt

    axes.set_ylabel(ylabel)
    axes.set_ylim(0, 1.05)
    axes.legend(fontsize='small')
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _by_type_chart(results: Mapping[str, Mapping], path: str) -> None:
    import matplotlib.pyplot as plt

    types = sorted({t for result in results.values() for t in result['by_action_type']})
    width = 0.8 / max(1, len(results))
    figure, axes = plt.subplots(figsize=(8, 4))
    for j, (label, result) in enumerate(results.items()):
        values = [result['by_action_type'].get(t, {}).get('step_success', 0.0) for t in types]
        axes.bar([i + j * width for i in range(len(types))], values, width, label=label)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(types))], types, rotation=30, ha='right')
    _save_fraction_chart(figure, axes, 'step success', path)


def write_report(results: Mapping[str, Mapping], output_dir: str, settings: Mapping[str, object]) -> List[str]:
    """Write metrics.json ({'settings': ..., 'results': results}), metrics.md and images/*.png; return the paths."""
    if not results:
        raise ValueError('no evaluation results to report')
    os.makedirs(os.path.join(output_dir, 'images'), exist_ok=True)
    paths: Dict[str, str] = {
        'json': os.path.join(output_dir, 'metrics.json'),
        'table': os.path.join(output_dir, 'metrics.md'),
        'overview': os.path.join(output_dir, 'images', 'metrics.png'),
        'by_type': os.path.join(output_dir, 'images', 'step_success_by_action_type.png'),
    }
    with open(paths['json'], 'w', encoding='utf-8') as f:
        json.dump({'settings': dict(settings), 'results': results}, f, indent=2, ensure_ascii=False)
    with open(paths['table'], 'w', encoding='utf-8') as f:
        f.write(markdown_table(results))
    _overview_chart(results, paths['overview'])
    _by_type_chart(results, paths['by_type'])
    return list(paths.values())
