# The redis-k8s handlers on charms.reactive, doing what the Rust charm's src/redis/handlers.rs does, so
# that the benchmark compares frameworks rather than features:
# - configure (when the image is available, every hook): validate the port (bad: blocked); render the
#   v3 pod spec with redis.conf; the leader sends it only when it changed, with maintenance
#   "configuring container" meanwhile; application-version-set when the image tag changed; queue
#   active "listening on port N".
# - publish_db (when a db client has joined): this unit's own ingress address (network-get, refreshed
#   in the hooks where it can change, remembered otherwise) and the port, on every db relation whose
#   data changed.
import json
import subprocess

from charmhelpers.core import hookenv, unitdata
from charms import layer
from charms.reactive import data_changed, endpoint_from_flag, when

REDIS_CONF = """\
# redis.conf written by the redis-k8s charm. Do not edit it in the pod: the charm
# rewrites it whenever the application's config changes.

# Listen on every IPv4 interface of the pod. Clients reach the pod through the
# Kubernetes Service, which forwards to the pod's IP on this port.
bind 0.0.0.0
port {port}

# Protected mode refuses clients from other hosts while no password is set.
protected-mode no

# redis-server is the container's main process: stay in the foreground.
daemonize no

# Log to stdout, so that `kubectl logs` and the cluster's log collection see it.
logfile ""

# Keep RDB and AOF files on the redis-data volume.
dir /data
"""


def valid_port():
    """The port option, or None (after queueing blocked) when it is not a usable TCP port."""
    port = hookenv.config('port')
    if isinstance(port, float) and port.is_integer():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        layer.status.blocked('invalid config: port must be an integer from 1 to 65535, got {!r}'.format(port))
        return None
    return port


def render_spec(port, image):
    details = {'imagePath': image.registry_path}
    if image.username:
        details['username'] = image.username
    if image.password:
        details['password'] = image.password
    probe = {'tcpSocket': {'port': port}, 'timeoutSeconds': 2, 'failureThreshold': 3}
    return {
        'version': 3,
        'containers': [{
            'name': 'redis',
            'imageDetails': details,
            'imagePullPolicy': 'IfNotPresent',
            'command': ['redis-server'],
            'args': ['/etc/redis-k8s/redis.conf'],
            'ports': [{'name': 'redis', 'containerPort': port, 'protocol': 'TCP'}],
            'volumeConfig': [
                {'name': 'redis-config', 'mountPath': '/etc/redis-k8s',
                 'files': [{'path': 'redis.conf', 'content': REDIS_CONF.format(port=port)}]},
                {'name': 'redis-data', 'mountPath': '/data', 'emptyDir': {}},
            ],
            'kubernetes': {
                'readinessProbe': dict(probe, initialDelaySeconds=1, periodSeconds=5),
                'livenessProbe': dict(probe, initialDelaySeconds=15, periodSeconds=10),
            },
        }],
    }


def image_version(path):
    name = path.split('@')[0].rsplit('/', 1)[-1]
    return name.split(':', 1)[1] if ':' in name else 'latest'


@when('layer.docker-resource.redis-image.available')
def configure():
    port = valid_port()
    if port is None:
        return
    image = layer.docker_resource.get_info('redis-image')
    spec = render_spec(port, image)
    leader = hookenv.is_leader()
    if leader and data_changed('redis.pod-spec', spec):
        layer.status.maintenance('configuring container')
        layer.caas_base.pod_spec_set(spec)
    version = image_version(image.registry_path)
    if data_changed('redis.workload-version', version):
        hookenv.application_version_set(version)
    if leader:
        layer.status.active('listening on port {}'.format(port))
    else:
        layer.status.active('listening on port {} (pod spec set by the leader)'.format(port))


@when('endpoint.db.joined')
def publish_db():
    port = valid_port()
    if port is None:
        return
    hook = hookenv.hook_name()
    refresh = hook.startswith('db-relation-') or hook in (
        'config-changed', 'upgrade-charm', 'leader-elected', 'start')
    kv = unitdata.kv()
    host = kv.get('redis.db.ingress-address')
    if host is None or refresh:
        # charmhelpers' network_get() needs a machine agent's jujud to check the Juju version, which a
        # CAAS operator pod does not have: ask network-get directly, as the Rust charm does.
        out = subprocess.check_output(['network-get', 'db', '--ingress-address', '--format=json'])
        host = json.loads(out.decode('utf-8'))
        kv.set('redis.db.ingress-address', host)
    db = endpoint_from_flag('endpoint.db.joined')
    data = {'host': host, 'hostname': host, 'port': str(port)}
    for relation in db.relations:
        if data_changed('redis.db.published.{}'.format(relation.relation_id), data):
            relation.to_publish_raw.update(data)
