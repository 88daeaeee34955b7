#!/usr/bin/env python3
"""redis-k8s on ops (benchmark fixture): the same behaviour as the Rust charm and the reactive fixture.

- First hook (and upgrade-charm, which also fires for resource updates): fetch the redis-image
  oci-image resource (resource-get + its content.yaml), remember it.
- Leader: when the image or the port changed, send a v3 pod spec (pod-spec-set), with maintenance
  statuses around it; then go active.
- db relation: publish this unit's ingress address and the port to every db relation.
"""
import json
import logging

import yaml

import ops

logger = logging.getLogger(__name__)


class RedisK8sCharm(ops.CharmBase):
    _stored = ops.StoredState()

    def __init__(self, framework):
        super().__init__(framework)
        self._stored.set_default(image=None, spec_key=None)
        for event in (self.on.install, self.on.leader_elected, self.on.config_changed,
                      self.on.start, self.on.update_status, self.on.upgrade_charm):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.db_relation_joined, self._on_db)
        framework.observe(self.on.db_relation_changed, self._on_db)

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
                'username': info['username'],
                'password': info['password'],
            }
        except (ops.ModelError, OSError, KeyError, TypeError, yaml.YAMLError) as e:
            logger.error('unable to fetch docker resource redis-image: %s', e)
            self.unit.status = ops.BlockedStatus('unable to fetch resource: redis-image')
            return False
        return True

    def _reconcile(self, event):
        if not self._fetch_image(force=isinstance(event, ops.UpgradeCharmEvent)):
            return
        port = int(self.config['port'])
        if self.unit.is_leader():
            key = json.dumps([self._stored.image['imagePath'], port])
            if key != self._stored.spec_key:
                self.unit.status = ops.MaintenanceStatus('configuring container')
                self.model.pod.set_spec(self._spec(port))
                self.unit.status = ops.MaintenanceStatus('creating container')
                self._stored.spec_key = key
        if isinstance(event, ops.ConfigChangedEvent):
            self._publish(port)
        self.unit.status = ops.ActiveStatus()

    def _on_db(self, event):
        self._publish(int(self.config['port']))

    def _publish(self, port):
        for relation in self.model.relations['db']:
            binding = self.model.get_binding(relation)
            address = str(binding.network.ingress_address) if binding else ''
            relation.data[self.unit].update({'host': address, 'port': str(port)})

    def _spec(self, port):
        return {
            'version': 3,
            'containers': [{
                'name': 'redis',
                'imageDetails': dict(self._stored.image),
                'args': ['redis-server', '--port', str(port)],
                'ports': [{'name': 'redis', 'containerPort': port, 'protocol': 'TCP'}],
                'kubernetes': {
                    'readinessProbe': {'tcpSocket': {'port': port}},
                    'livenessProbe': {'tcpSocket': {'port': port}},
                },
            }],
        }


if __name__ == '__main__':
    ops.main(RedisK8sCharm, use_juju_for_storage=False)
