// MQTT.js (Debian's node-mqtt) interop probe: subscribe, publish at QoS 0/1/2 and retained,
// then print what arrived as one JSON line. Usage: node roundtrip.js PORT PROTOCOL_VERSION
'use strict';
const mqtt = require('mqtt');

const port = Number(process.argv[2]);
const protocolVersion = Number(process.argv[3]);
const url = 'mqtt://127.0.0.1:' + port;
const prefix = 'js/' + protocolVersion + '/' + process.pid;
const result = { received: [], connack: null, errors: [] };
const timer = setTimeout(() => finish('timeout'), 8000);

function finish(why) {
  clearTimeout(timer);
  result.end = why;
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

const options = { protocolVersion, clean: true, reconnectPeriod: 0, connectTimeout: 5000 };
const publisher = mqtt.connect(url, Object.assign({ clientId: 'js-pub-' + process.pid }, options));
publisher.on('error', (e) => result.errors.push('pub: ' + e.message));
publisher.on('connect', () => {
  publisher.publish(prefix + '/retained', 'kept', { qos: 1, retain: true }, () => {
    const subscriber = mqtt.connect(url, Object.assign({ clientId: 'js-sub-' + process.pid }, options));
    subscriber.on('error', (e) => result.errors.push('sub: ' + e.message));
    subscriber.on('connect', (connack) => {
      result.connack = { sessionPresent: connack.sessionPresent, reasonCode: connack.reasonCode || connack.returnCode || 0 };
      subscriber.subscribe(prefix + '/#', { qos: 2 }, (err, granted) => {
        if (err) { result.errors.push('subscribe: ' + err.message); return finish('error'); }
        result.granted = granted.map((g) => g.qos);
        for (const qos of [0, 1, 2]) {
          const properties = protocolVersion === 5 ? { userProperties: { via: 'mqtt.js' } } : undefined;
          publisher.publish(prefix + '/q' + qos, 'payload-' + qos, { qos, properties });
        }
      });
    });
    subscriber.on('message', (topic, payload, packet) => {
      const entry = { topic: topic.slice(prefix.length + 1), payload: payload.toString(), qos: packet.qos, retain: packet.retain };
      if (packet.properties && packet.properties.userProperties) entry.userProperties = packet.properties.userProperties;
      result.received.push(entry);
      if (result.received.length === 4) {
        publisher.publish(prefix + '/retained', '', { qos: 1, retain: true }, () => {
          subscriber.end(false, {}, () => publisher.end(false, {}, () => finish('done')));
        });
      }
    });
  });
});
