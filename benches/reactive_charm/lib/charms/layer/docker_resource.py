"""layer:docker-resource library (semantics reference §6): fetch, _fetch, get_info."""
import yaml

from charmhelpers.core import hookenv, unitdata
from charms import layer
from charms.reactive import clear_flag, data_changed, is_flag_set, set_flag, toggle_flag


class DockerImageInfo:
    def __init__(self, data):
        self.registry_path = data['registrypath']
        self.username = data['username']
        self.password = data['password']


def _prefix(name):
    return 'layer.docker-resource.{}'.format(name)


def fetch(name):
    """Queue `name` for fetching (no dedup, as the layer does) and mark it wanted."""
    queue = unitdata.kv().get('layer.docker-resource.pending', [])
    queue.append(name)
    unitdata.kv().set('layer.docker-resource.pending', queue)
    set_flag('{}.fetched'.format(_prefix(name)))
    set_flag('layer.docker-resource.pending')


def _fetch():
    set_status = layer.options('docker-resource').get('set-status', True)
    queue = unitdata.kv().get('layer.docker-resource.pending', [])
    failed = []
    for name in queue:
        prefix = _prefix(name)
        if set_status:
            layer.status.maintenance('fetching resource: {}'.format(name))
        try:
            path = hookenv.resource_get(name)
            if not path:
                raise ValueError('no path from resource-get')
            with open(path) as fp:
                image_info = yaml.safe_load(fp)
            if not image_info:
                raise ValueError('no data in {}'.format(path))
        except Exception as e:
            hookenv.log('unable to fetch docker resource {}: {}'.format(name, e), level=hookenv.ERROR)
            failed.append(name)
            set_flag('{}.failed'.format(prefix))
            clear_flag('{}.available'.format(prefix))
            clear_flag('{}.changed'.format(prefix))
            continue
        unitdata.kv().set('{}.image-info'.format(prefix), image_info)
        was_available = is_flag_set('{}.available'.format(prefix))
        is_changed = data_changed(prefix, image_info)
        set_flag('{}.available'.format(prefix))
        clear_flag('{}.failed'.format(prefix))
        toggle_flag('{}.changed'.format(prefix), was_available and is_changed)
    if failed:
        if set_status:
            s = 's' if len(failed) > 1 else ''
            layer.status.blocked('unable to fetch resource{}: {}'.format(s, ', '.join(failed)))
        unitdata.kv().set('layer.docker-resource.pending', failed)
        set_flag('layer.docker-resource.pending')
    else:
        unitdata.kv().set('layer.docker-resource.pending', [])
        clear_flag('layer.docker-resource.pending')


def get_info(name):
    info = unitdata.kv().get('{}.image-info'.format(_prefix(name)))
    if not info:
        raise ValueError('resource {} not available'.format(name))
    return DockerImageInfo(info)
