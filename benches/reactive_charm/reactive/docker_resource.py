# layer:docker-resource handlers (semantics reference §6).
from charmhelpers.core import hookenv
from charms.layer import docker_resource
from charms.reactive import hook, is_flag_set, set_flag, when, when_not


@when_not('layer.docker-resource.auto-fetched')
def auto_fetch():
    # Every oci-image resource with auto-fetch: true, once per unit lifetime.
    for name, resource in (hookenv.metadata().get('resources') or {}).items():
        if resource.get('type') == 'oci-image' and resource.get('auto-fetch'):
            docker_resource.fetch(name)
    set_flag('layer.docker-resource.auto-fetched')


@when('layer.docker-resource.pending')
def fetch():
    docker_resource._fetch()


@hook('upgrade-charm')
def check_updates():
    # upgrade-charm also fires for resource updates: re-fetch what was fetched before.
    for name in (hookenv.metadata().get('resources') or {}):
        if is_flag_set('layer.docker-resource.{}.fetched'.format(name)):
            docker_resource.fetch(name)
