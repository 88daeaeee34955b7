# The redis-k8s handlers (semantics reference §6 end, anchors §2.2) with the port option, written
# to do what the Rust charm does: render a v3 pod spec with the port, go active, tell `db` clients
# where Redis listens (this unit's own ingress address, not the remote one's).
import json
import subprocess

from charmhelpers.core import hookenv
from charms import layer
from charms.reactive import (clear_flag, endpoint_from_flag, hook, set_flag, when,
                             when_any, when_not)


@when_any('layer.docker-resource.redis-image.changed', 'config.changed.port')
def update_spec():
    # A new image or a new port re-sends the pod spec.
    clear_flag('charm.redis.started')


@hook('upgrade-charm')
def upgrade():
    clear_flag('charm.redis.started')


@when('layer.docker-resource.redis-image.available')
@when_not('charm.redis.started')
def start_charm():
    if not hookenv.is_leader():
        layer.status.waiting('waiting for the leader to set the pod spec')
        return
    layer.status.maintenance('configuring container')
    image_info = layer.docker_resource.get_info('redis-image')
    port = hookenv.config('port')
    layer.caas_base.pod_spec_set({
        'version': 3,
        'containers': [{
            'name': 'redis',
            'imageDetails': {
                'imagePath': image_info.registry_path,
                'username': image_info.username,
                'password': image_info.password,
            },
            'args': ['redis-server', '--port', str(port)],
            'ports': [{'name': 'redis', 'containerPort': port, 'protocol': 'TCP'}],
            'kubernetes': {
                'readinessProbe': {'tcpSocket': {'port': port}},
                'livenessProbe': {'tcpSocket': {'port': port}},
            },
        }],
    })
    layer.status.maintenance('creating container')
    set_flag('charm.redis.started')


@when('charm.redis.started')
def charm_ready():
    layer.status.active('')


@when('endpoint.db.joined')
def send_relation_info():
    db = endpoint_from_flag('endpoint.db.joined')
    # charmhelpers' network_get() needs a machine agent's jujud to check the Juju version, which a
    # CAAS operator pod does not have: ask network-get directly, as the Rust charm does.
    out = subprocess.check_output(['network-get', 'db', '--ingress-address', '--format=json'])
    address = json.loads(out.decode('utf-8'))
    db.configure(host=address, port=hookenv.config('port'))
