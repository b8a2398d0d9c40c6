// MQTT.js (Debian's node-mqtt) probe for any broker URL (ws://, wss://, mqtt://, mqtts://):
// subscribe, publish at QoS 0/1/2, print what arrived as one JSON line.
// Usage: node url_roundtrip.js URL PROTOCOL_VERSION [CA_FILE]
'use strict';
const fs = require('fs');
const mqtt = require('mqtt');

const url = process.argv[2];
const protocolVersion = Number(process.argv[3]);
const caFile = process.argv[4];
const prefix = 'jsurl/' + protocolVersion + '/' + process.pid;
const result = { received: [], errors: [] };
const timer = setTimeout(() => finish('timeout'), 8000);

function finish(why) {
  clearTimeout(timer);
  result.end = why;
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

const options = { protocolVersion, clean: true, reconnectPeriod: 0, connectTimeout: 5000 };
if (caFile) {
  options.ca = fs.readFileSync(caFile);
  options.rejectUnauthorized = true;
}
const subscriber = mqtt.connect(url, Object.assign({ clientId: 'jsurl-sub-' + process.pid }, options));
subscriber.on('error', (e) => { result.errors.push('sub: ' + e.message); finish('error'); });
subscriber.on('connect', () => {
  subscriber.subscribe(prefix + '/#', { qos: 2 }, (err, granted) => {
    if (err) { result.errors.push('subscribe: ' + err.message); return finish('error'); }
    result.granted = granted.map((g) => g.qos);
    const publisher = mqtt.connect(url, Object.assign({ clientId: 'jsurl-pub-' + process.pid }, options));
    publisher.on('error', (e) => { result.errors.push('pub: ' + e.message); finish('error'); });
    publisher.on('connect', () => {
      for (const qos of [0, 1, 2]) publisher.publish(prefix + '/q' + qos, 'ws-payload-' + qos, { qos });
    });
    subscriber.on('message', (topic, payload, packet) => {
      result.received.push({ topic: topic.slice(prefix.length + 1), payload: payload.toString(), qos: packet.qos });
      if (result.received.length === 3) {
        subscriber.end(false, {}, () => publisher.end(false, {}, () => finish('done')));
      }
    });
  });
});
