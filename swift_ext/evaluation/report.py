"""Evaluation outputs in a directory: ``metrics.json``, ``metrics.md`` and PNG charts.

``results`` maps a model label (an adapter directory name such as ``global_lora_3``, or a result file stem) to the
dict of ``scoring.score``. When every label ends in a round number (``global_lora_{r}``) the overview chart is the
metric per round (``base`` is round 0); otherwise one bar group per label.

Table and charts use one unit: percent, written with its sign (``42.5%``). Each chart's title names the run, the
prompt format and the number of steps and episodes scored; a chart without any step to show says so.
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
NO_DATA = 'no data: no step was scored'


def label_round(label: str) -> Optional[int]:
    """The trailing round number of ``global_lora_12`` (12); 0 for ``base`` (the model before round 1); None
    otherwise."""
    if label == 'base':
        return 0
    match = _ROUND.search(label)
    return int(match.group(1)) if match else None


def percent(fraction: float) -> str:
    """``0.425`` -> ``42.5%``: the one unit of the table and the charts."""
    return f'{100 * fraction:.1f}%'


def chart_title(results: Mapping[str, Mapping], settings: Mapping[str, object]) -> str:
    """``<run> · <prompt format> · n = <steps> steps, <episodes> episodes`` (a range when the models differ)."""

    def counted(key: str) -> str:
        values = sorted({result['overall'][key] for result in results.values()})
        return str(values[0]) if len(values) == 1 else f'{values[0]}-{values[-1]}'

    scored = f'n = {counted("steps")} steps, {counted("episodes")} episodes'
    return f'{settings["run"]} · {settings["prompt_format"]} · {scored}'


def markdown_table(results: Mapping[str, Mapping]) -> str:
    """One row per model: steps, episodes, unparseable, then HEADLINE metrics in percent; then step success per
    gold action type."""
    head = ['model', 'steps', 'episodes', 'unparseable', *HEADLINE.values()]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for label, result in results.items():
        overall = result['overall']
        cells = [label, overall['steps'], overall['episodes'], overall['unparseable']]
        cells += [percent(overall[key]) for key in HEADLINE]
        lines.append('| ' + ' | '.join(str(cell) for cell in cells) + ' |')
    types = sorted({t for result in results.values() for t in result['by_action_type']})
    lines += ['', 'Step success per gold action type:', '', '| model | ' + ' | '.join(types) + ' |']
    lines.append('|' + '---|' * (len(types) + 1))
    for label, result in results.items():
        by_type = result['by_action_type']
        cells = [percent(by_type[t]['step_success']) if t in by_type else '-' for t in types]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def overview_figure(results: Mapping[str, Mapping], title: str):
    """Each HEADLINE metric in percent: per round when every label has a distinct round, else bars per label."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    labels = list(results)
    rounds = [label_round(label) for label in labels]
    figure, axes = plt.subplots(figsize=(7, 4))
    if all(r is not None for r in rounds) and len(set(rounds)) == len(rounds):
        order = sorted(range(len(labels)), key=lambda i: rounds[i])
        for key, name in HEADLINE.items():
            values = [100 * results[labels[i]]['overall'][key] for i in order]
            axes.plot([rounds[i] for i in order], values, 'o-', label=name)
        axes.set_xlabel('round')
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        width = 0.8 / len(HEADLINE)
        for j, (key, name) in enumerate(HEADLINE.items()):
            axes.bar([i + j * width for i in range(len(labels))], [100 * results[x]['overall'][key] for x in labels],
                     width, label=name)  # fmt: skip
        axes.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, rotation=30, ha='right')
    scored = any(result['overall']['steps'] for result in results.values())
    return _finish_percent_chart(figure, axes, 'metric', title, scored)


def by_type_figure(results: Mapping[str, Mapping], title: str):
    """Step success in percent per gold action type, one bar per model."""
    import matplotlib.pyplot as plt

    types = sorted({t for result in results.values() for t in result['by_action_type']})
    width = 0.8 / max(1, len(results))
    figure, axes = plt.subplots(figsize=(8, 4))
    for j, (label, result) in enumerate(results.items()):
        values = [100 * result['by_action_type'].get(t, {}).get('step_success', 0.0) for t in types]
        axes.bar([i + j * width for i in range(len(types))], values, width, label=label)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(types))], types, rotation=30, ha='right')
    return _finish_percent_chart(figure, axes, 'step success', title, bool(types))


def _finish_percent_chart(figure, axes, ylabel: str, title: str, has_data: bool):
    """Common finish: a 0-100% y axis with its label, the title, the legend, or NO_DATA across an empty chart."""
    from matplotlib.ticker import PercentFormatter

    axes.set_ylabel(f'{ylabel} (%)')
    axes.set_ylim(0, 105)
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=100))
    axes.set_title(title, fontsize='medium')
    if has_data:
        axes.legend(fontsize='small')
    else:
        axes.text(0.5, 0.5, NO_DATA, transform=axes.transAxes, ha='center', va='center')
    figure.tight_layout()
    return figure


def _save(figure, path: str) -> None:
    import matplotlib.pyplot as plt

    figure.savefig(path)
    plt.close(figure)


def write_report(results: Mapping[str, Mapping], output_dir: str, settings: Mapping[str, object]) -> List[str]:
    """Write metrics.json ({'settings': ..., 'results': results}), metrics.md and images/*.png; return the paths.
    ``settings`` (the evaluation's options) must name ``run`` and ``prompt_format`` for the chart titles."""
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
    title = chart_title(results, settings)
    _save(overview_figure(results, title), paths['overview'])
    _save(by_type_figure(results, title), paths['by_type'])
    return list(paths.values())
