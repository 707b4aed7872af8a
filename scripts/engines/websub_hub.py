"""A real WebSub hub (Flask-WebSub) on 127.0.0.1 for the watcher's push test, started by
websub.sh. Celery's in-memory broker with an in-process worker thread; subscriptions in a SQLite
file. Publishing (hub.mode=publish&hub.topic=URL) is on: the test publishes through it. Besides
the hub, GET /subscriptions?topic=URL lists the callbacks subscribed to a topic (never their
secrets), so a test can see what the hub itself holds."""

import os
import sys

from celery import Celery
from celery.contrib.testing.worker import start_worker
from flask import Flask, jsonify, request
from flask_websub.hub import Hub, SQLite3HubStorage

port = int(sys.argv[1])
db = sys.argv[2]

app = Flask(__name__)
app.config.update(
    PUBLISH_SUPPORTED=True,
    HUB_MIN_LEASE_SECONDS=1,
    SIGNATURE_ALGORITHM="sha256",
    BACKOFF_BASE=0.5,
    MAX_ATTEMPTS=3,
)
celery = Celery("hub", broker="memory://", backend="cache+memory://")
celery.conf.broker_transport_options = {"polling_interval": 0.05}
hub = Hub(SQLite3HubStorage(db), celery, **app.config)
app.register_blueprint(hub.build_blueprint(url_prefix="/hub"))


@app.route("/health")
def health():
    return "ok"


@app.route("/subscriptions")
def subscriptions():
    topic = request.args.get("topic", "")
    return jsonify(sorted(callback for callback, _secret in hub.storage.get_callbacks(topic)))


if __name__ == "__main__":
    with start_worker(celery, pool="threads", concurrency=4, perform_ping_check=False):
        app.run(host="127.0.0.1", port=port, threaded=True, use_reloader=False)
