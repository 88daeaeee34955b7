#!/usr/bin/env python3
"""redis-k8s on ops (benchmark fixture), doing what the Rust charm's handlers do.

- First hook, and upgrade-charm (which also fires for resource updates): fetch the redis-image
  oci-image resource (resource-get, then its content.yaml) with maintenance "fetching resource".
- Every hook: validate the port (bad: blocked); render the v3 pod spec with redis.conf; the leader
  sends it only when it changed, with maintenance "configuring container"; set the workload version
  when the image tag changed; active "listening on port N".
- db: this unit's own ingress address (network-get, refreshed in the hooks where it can change,
  remembered otherwise) and the port on every db relation whose data changed.
"""
import hashlib
import json
import logging
import os

import yaml

import ops

logger = logging.getLogger(__name__)

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

# Hooks in which this unit's ingress address can have changed.
REFRESH_ADDRESS = ('config-changed', 'upgrade-charm', 'leader-elected', 'start')


def digest(data):
    return hashlib.md5(json.dumps(data, sort_keys=True).encode('utf-8')).hexdigest()


class RedisK8sCharm(ops.CharmBase):
    _stored = ops.StoredState()

    def __init__(self, framework):
        super().__init__(framework)
        self._stored.set_default(image=None, spec=None, version=None, address=None, published={})
        for event in (self.on.install, self.on.leader_elected, self.on.config_changed, self.on.start,
                      self.on.update_status, self.on.upgrade_charm, self.on.db_relation_joined,
                      self.on.db_relation_changed):
            framework.observe(event, self._reconcile)

    def _fetch_image(self, force):
        if self._stored.image is not None and not force:
            return True
        self.unit.status = ops.MaintenanceStatus('fetching resource: redis-image')
        try:
            path = self.model.resources.fetch('redis-image')
            with open(path) as fp:
                info = yaml.safe_load(fp)
            self._stored.image = {
                'imagePath': info['registrypath'],
                'username': info.get('username') or '',
                'password': info.get('password') or '',
            }
        except (ops.ModelError, OSError, KeyError, TypeError, AttributeError, yaml.YAMLError) as e:
            logger.error('unable to fetch docker resource redis-image: %s', e)
            self.unit.status = ops.BlockedStatus('unable to fetch resource: redis-image')
            return False
        return True

    def _port(self):
        port = self.config.get('port')
        if isinstance(port, float) and port.is_integer():
            port = int(port)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            return None
        return port

    def _reconcile(self, event):
        if not self._fetch_image(force=isinstance(event, ops.UpgradeCharmEvent)):
            return
        port = self._port()
        if port is None:
            msg = 'invalid config: port must be an integer from 1 to 65535, got {!r}'
            self.unit.status = ops.BlockedStatus(msg.format(self.config.get('port')))
            return
        leader = self.unit.is_leader()
        spec = self._spec(port)
        if leader and digest(spec) != self._stored.spec:
            self.unit.status = ops.MaintenanceStatus('configuring container')
            self.model.pod.set_spec(spec)
            self._stored.spec = digest(spec)
        version = self._stored.image['imagePath'].split('@')[0].rsplit('/', 1)[-1].partition(':')[2] or 'latest'
        if version != self._stored.version:
            self.unit.set_workload_version(version)
            self._stored.version = version
        self._publish(port)
        suffix = '' if leader else ' (pod spec set by the leader)'
        self.unit.status = ops.ActiveStatus('listening on port {}{}'.format(port, suffix))

    def _publish(self, port):
        relations = self.model.relations['db']
        if not relations:
            return
        hook = os.environ.get('JUJU_HOOK_NAME', '')
        if self._stored.address is None or hook.startswith('db-relation-') or hook in REFRESH_ADDRESS:
            binding = self.model.get_binding('db')
            self._stored.address = str(binding.network.ingress_address) if binding else ''
        host = self._stored.address
        data = {'host': host, 'hostname': host, 'port': str(port)}
        for relation in relations:
            key = str(relation.id)
            if self._stored.published.get(key) != digest(data):
                relation.data[self.unit].update(data)
                self._stored.published[key] = digest(data)

    def _spec(self, port):
        image = {k: v for k, v in self._stored.image.items() if v}
        probe = {'tcpSocket': {'port': port}, 'timeoutSeconds': 2, 'failureThreshold': 3}
        return {
            'version': 3,
            'containers': [{
                'name': 'redis',
                'imageDetails': image,
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


if __name__ == '__main__':
    ops.main(RedisK8sCharm, use_juju_for_storage=False)
