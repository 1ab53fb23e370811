"""FedMABench record field names that hold one value per step.

Step-wise records (``step-wise-all.jsonl``) carry the singular name with one value; episode-wise records
(``episode-wise-all.jsonl``) carry the plural name with one value per step. Other fields are per episode.
"""

from typing import Dict

#: singular (step-wise) name -> plural (episode-wise) name
PER_STEP_FIELDS: Dict[str, str] = {
    'sub_instruction': 'sub_instructions',
    'act_origin': 'acts_origin',
    'act_convert': 'acts_convert',
    'img': 'imgs',
    'elements': 'elements',
    'screen_size': 'screen_sizes',
    'target_bounds': 'targets_bounds',
}
