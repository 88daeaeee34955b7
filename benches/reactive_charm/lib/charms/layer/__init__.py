"""charms.layer: layer libraries and layer.yaml options (as layer-basic provides them)."""
import os

import yaml

_OPTIONS = None


def options(section=None):
    """The `options:` map of the built charm's layer.yaml, or one layer's section of it."""
    global _OPTIONS
    if _OPTIONS is None:
        path = os.path.join(os.environ.get('JUJU_CHARM_DIR', '.'), 'layer.yaml')
        with open(path) as fp:
            _OPTIONS = (yaml.safe_load(fp) or {}).get('options', {})
    if section is None:
        return _OPTIONS
    return _OPTIONS.get(section, {})
