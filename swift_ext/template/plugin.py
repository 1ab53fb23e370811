"""The ``--external_plugins`` target for plain ``swift sft`` / ``swift infer``: installs the checked templates.

``swift sft --external_plugins "$(python -c 'import swift_ext.template.plugin as p; print(p.__file__)')" ...``
"""

from swift_ext.template import register_checked_templates

register_checked_templates()
