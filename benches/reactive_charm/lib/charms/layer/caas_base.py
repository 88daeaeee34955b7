"""layer:caas-base (semantics reference §5): config flags, layer-lib import, pod_spec_set."""
import os
import re
import subprocess
from importlib import import_module
from pathlib import Path

import yaml


def import_layer_libs():
    """Import every lib/charms/layer/*.py so that `charms.layer.<name>` attributes exist."""
    for module_file in Path('lib/charms/layer').glob('*'):
        name = module_file.stem
        if name in ('__init__', 'caas_base') or not (module_file.suffix == '.py' or module_file.is_dir()):
            continue
        import_module('charms.layer.{}'.format(name))


def init_config_states():
    """Set config.changed[.<opt>], config.set.<opt>, config.default.<opt> before main()."""
    from charmhelpers.core import hookenv
    from charms.reactive import set_state, toggle_state

    config = hookenv.config()
    config_defs = {}
    config_yaml = os.path.join(hookenv.charm_dir(), 'config.yaml')
    if os.path.exists(config_yaml):
        with open(config_yaml) as fp:
            config_defs = (yaml.safe_load(fp) or {}).get('options', {})
    defaults = {key: value.get('default') for key, value in config_defs.items()}
    for opt in config_defs:
        if config.changed(opt):
            set_state('config.changed')
            set_state('config.changed.{}'.format(opt))
        toggle_state('config.set.{}'.format(opt), config.get(opt))
        toggle_state('config.default.{}'.format(opt), config.get(opt) == defaults[opt])
    hookenv.atexit(clear_config_states)


def clear_config_states():
    """atexit: drop the one-hook config flags and commit the kv (caas-base flushes here)."""
    from charmhelpers.core import hookenv, unitdata
    from charms.reactive import remove_state

    config = hookenv.config()
    remove_state('config.changed')
    for opt in config.keys():
        remove_state('config.changed.{}'.format(opt))
        remove_state('config.set.{}'.format(opt))
        remove_state('config.default.{}'.format(opt))
    unitdata.kv().flush()


def pod_spec_set(spec, k8s_resources=None):
    """`pod-spec-set` with the YAML spec on stdin, no arguments (the 2019-05+ behaviour)."""
    from charmhelpers.core import hookenv

    if not isinstance(spec, str):
        spec = yaml.dump(spec)
    if k8s_resources:
        spec += yaml.dump(k8s_resources)
    try:
        subprocess.run(['pod-spec-set'], input=spec.encode('utf-8'),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    except subprocess.CalledProcessError as e:
        err = e.stderr.decode('utf-8', 'replace')
        hookenv.log('pod-spec-set encountered an error: `{}`'.format(err), hookenv.ERROR)
        if re.match(r'^ERROR application [\w-]+ not alive$', err.strip()):
            hookenv.log('ignoring: the application is being removed', hookenv.INFO)
            return
        raise
