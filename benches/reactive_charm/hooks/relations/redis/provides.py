# interface:redis, provides side (semantics reference §7).
from charms.reactive import Endpoint


class RedisProvides(Endpoint):
    def configure(self, host, port, password=None):
        """Publish host, port (and password when truthy) on every relation of the endpoint."""
        for relation in self.relations:
            data = {'host': host, 'port': port}
            if password:
                data['password'] = password
            relation.to_publish.update(data)
