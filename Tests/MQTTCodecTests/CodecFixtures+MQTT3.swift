import MQTTCodec
import NIOCore

// MQTT 3.1 and 3.1.1 fixtures, written from the OASIS MQTT 3.1.1 standard (chapter 3) and, for
// `MQIsdp`, the IBM MQTT 3.1 specification. Each line of bytes is one field; the comment names it.
// Remaining lengths are counted by hand in the comment after them.

extension CodecFixture {
    static let mqtt3: [CodecFixture] = [
        // MARK: CONNECT (3.1.1 section 3.1)
        CodecFixture(
            "CONNECT minimal", .v3_1_1,
            bytes: wire(
                [0x10, 0x11],  // CONNECT, remaining length 17 = 10 + 7
                [0x00, 0x04], utf8("MQTT"),  // protocol name
                [0x04],  // protocol level 4 (3.1.1)
                [0x02],  // connect flags: clean session
                [0x00, 0x3C],  // keep alive 60 s
                [0x00, 0x05], utf8("roost")  // client identifier
            ),
            packet: .connect(Connect(version: .v3_1_1, cleanStart: true, keepAlive: 60, clientID: "roost"))
        ),
        CodecFixture(
            "CONNECT with will (QoS 1, retain), no clean session", .v3_1_1,
            bytes: wire(
                [0x10, 0x1D],  // CONNECT, remaining length 29 = 10 + 4 + 10 + 5
                [0x00, 0x04], utf8("MQTT"),  // protocol name
                [0x04],  // protocol level 4
                [0x2C],  // flags: will retain 0x20 | will QoS 1 0x08 | will flag 0x04
                [0x00, 0x1E],  // keep alive 30 s
                [0x00, 0x02], utf8("c1"),  // client identifier
                [0x00, 0x08], utf8("dev/gone"),  // will topic
                [0x00, 0x03], utf8("bye")  // will payload (binary data)
            ),
            packet: .connect(
                Connect(
                    version: .v3_1_1, cleanStart: false, keepAlive: 30, clientID: "c1",
                    will: Will(topic: "dev/gone", payload: buf("bye"), qos: .atLeastOnce, retain: true)))
        ),
        CodecFixture(
            "CONNECT with user name and password, empty client identifier", .v3_1_1,
            bytes: wire(
                [0x10, 0x1B],  // CONNECT, remaining length 27 = 10 + 2 + 7 + 8
                [0x00, 0x04], utf8("MQTT"),  // protocol name
                [0x04],  // protocol level 4
                [0xC2],  // flags: user name 0x80 | password 0x40 | clean session 0x02
                [0x00, 0x0A],  // keep alive 10 s
                [0x00, 0x00],  // client identifier: empty [MQTT-3.1.3-6]
                [0x00, 0x05], utf8("alice"),  // user name
                [0x00, 0x06], [0x73, 0x33, 0x63, 0x72, 0x33, 0x74]  // password "s3cr3t" (binary data)
            ),
            packet: .connect(
                Connect(
                    version: .v3_1_1, cleanStart: true, keepAlive: 10, clientID: "", username: "alice",
                    password: buf("s3cr3t")))
        ),
        CodecFixture(
            "CONNECT 3.1 (MQIsdp) minimal", .v3_1,
            bytes: wire(
                [0x10, 0x11],  // CONNECT, remaining length 17 = 12 + 5
                [0x00, 0x06], utf8("MQIsdp"),  // protocol name of 3.1
                [0x03],  // protocol version 3
                [0x02],  // flags: clean session
                [0x00, 0x3C],  // keep alive 60 s
                [0x00, 0x03], utf8("old")  // client identifier
            ),
            packet: .connect(Connect(version: .v3_1, cleanStart: true, keepAlive: 60, clientID: "old"))
        ),
        CodecFixture(
            "CONNECT 3.1 (MQIsdp) with will QoS 2, user name and password", .v3_1,
            bytes: wire(
                [0x10, 0x20],  // CONNECT, remaining length 32 = 12 + 5 + 5 + 4 + 3 + 3
                [0x00, 0x06], utf8("MQIsdp"),  // protocol name
                [0x03],  // protocol version 3
                [0xD6],  // flags: user 0x80 | password 0x40 | will QoS 2 0x10 | will 0x04 | clean 0x02
                [0x00, 0x78],  // keep alive 120 s
                [0x00, 0x03], utf8("old"),  // client identifier
                [0x00, 0x03], utf8("a/b"),  // will topic
                [0x00, 0x02], [0x01, 0x02],  // will message
                [0x00, 0x01], utf8("u"),  // user name
                [0x00, 0x01], utf8("p")  // password
            ),
            packet: .connect(
                Connect(
                    version: .v3_1, cleanStart: true, keepAlive: 120, clientID: "old", username: "u",
                    password: buf("p"), will: Will(topic: "a/b", payload: buf([0x01, 0x02]), qos: .exactlyOnce)))
        ),

        // MARK: CONNACK (3.2)
        CodecFixture(
            "CONNACK accepted, session present", .v3_1_1,
            bytes: wire(
                [0x20, 0x02],  // CONNACK, remaining length 2
                [0x01],  // acknowledge flags: session present
                [0x00]  // return code 0: accepted
            ),
            packet: .connack(ConnAck(sessionPresent: true, reasonCode: .success))
        ),
        CodecFixture(
            "CONNACK refused, not authorized", .v3_1_1,
            bytes: wire(
                [0x20, 0x02],  // CONNACK, remaining length 2
                [0x00],  // acknowledge flags: none
                [0x05]  // return code 5: not authorized
            ),
            packet: .connack(ConnAck(reasonCode: ReasonCode(ConnectReturnCode.notAuthorized.rawValue)))
        ),

        // MARK: PUBLISH (3.3)
        CodecFixture(
            "PUBLISH QoS 0", .v3_1_1,
            bytes: wire(
                [0x30, 0x07],  // PUBLISH, flags 0000 (no DUP, QoS 0, no RETAIN), remaining length 7
                [0x00, 0x03], utf8("a/b"),  // topic name (no packet identifier at QoS 0)
                utf8("hi")  // payload
            ),
            packet: .publish(Publish(topic: "a/b", payload: buf("hi")))
        ),
        CodecFixture(
            "PUBLISH QoS 0 retain, empty payload", .v3_1_1,
            bytes: wire(
                [0x31, 0x03],  // PUBLISH, flags 0001 (RETAIN), remaining length 3
                [0x00, 0x01], utf8("t")  // topic name; the payload is empty (clears the retained message)
            ),
            packet: .publish(Publish(topic: "t", payload: ByteBuffer(), retain: true))
        ),
        CodecFixture(
            "PUBLISH QoS 1", .v3_1_1,
            bytes: wire(
                [0x32, 0x08],  // PUBLISH, flags 0010 (QoS 1), remaining length 8
                [0x00, 0x03], utf8("a/b"),  // topic name
                [0x00, 0x0A],  // packet identifier 10
                utf8("x")  // payload
            ),
            packet: .publish(Publish(topic: "a/b", payload: buf("x"), qos: .atLeastOnce, packetID: 10))
        ),
        CodecFixture(
            "PUBLISH QoS 1 DUP retain", .v3_1_1,
            bytes: wire(
                [0x3B, 0x08],  // PUBLISH, flags 1011 (DUP, QoS 1, RETAIN), remaining length 8
                [0x00, 0x03], utf8("a/b"),  // topic name
                [0xFF, 0xFF],  // packet identifier 65535
                utf8("x")  // payload
            ),
            packet: .publish(
                Publish(topic: "a/b", payload: buf("x"), qos: .atLeastOnce, retain: true, dup: true, packetID: 65_535))
        ),
        CodecFixture(
            "PUBLISH QoS 2", .v3_1_1,
            bytes: wire(
                [0x34, 0x0A],  // PUBLISH, flags 0100 (QoS 2), remaining length 10
                [0x00, 0x04], utf8("x/yz"),  // topic name
                [0x01, 0x00],  // packet identifier 256
                [0x00, 0xFF]  // payload: two raw bytes
            ),
            packet: .publish(Publish(topic: "x/yz", payload: buf([0x00, 0xFF]), qos: .exactlyOnce, packetID: 256))
        ),
        CodecFixture(
            "PUBLISH QoS 2 DUP", .v3_1_1,
            bytes: wire(
                [0x3C, 0x06],  // PUBLISH, flags 1100 (DUP, QoS 2), remaining length 6
                [0x00, 0x02], utf8("/a"),  // topic name (a leading '/' is a real empty level)
                [0x00, 0x02]  // packet identifier 2; no payload
            ),
            packet: .publish(Publish(topic: "/a", payload: ByteBuffer(), qos: .exactlyOnce, dup: true, packetID: 2))
        ),
        CodecFixture(
            "PUBLISH QoS 2 retain, UTF-8 topic", .v3_1_1,
            bytes: wire(
                [0x35, 0x0B],  // PUBLISH, flags 0101 (QoS 2, RETAIN), remaining length 11
                [0x00, 0x06], [0x63, 0x61, 0x66, 0xC3, 0xA9, 0x2F],  // topic name "café/" (é is C3 A9)
                [0x00, 0x03],  // packet identifier 3
                [0x21]  // payload "!"
            ),
            packet: .publish(
                Publish(topic: "caf\u{E9}/", payload: buf("!"), qos: .exactlyOnce, retain: true, packetID: 3))
        ),
        CodecFixture(
            "PUBLISH with a two-byte remaining length", .v3_1_1,
            bytes: wire(
                [0x30, 0xCD, 0x01],  // PUBLISH QoS 0, remaining length 205 = 0x4D + 1 * 128 (1.5.5)
                [0x00, 0x03], utf8("big"),  // topic name
                [UInt8](repeating: 0xAB, count: 200)  // payload: 200 bytes
            ),
            packet: .publish(Publish(topic: "big", payload: buf([UInt8](repeating: 0xAB, count: 200))))
        ),
        CodecFixture(
            "PUBLISH with a three-byte remaining length", .v3_1_1,
            bytes: wire(
                [0x30, 0x85, 0x80, 0x01],  // PUBLISH QoS 0, remaining length 16389 = 5 + 0 * 128 + 1 * 16384
                [0x00, 0x03], utf8("big"),  // topic name
                [UInt8](repeating: 0x5A, count: 16_384)  // payload: 16384 bytes
            ),
            packet: .publish(Publish(topic: "big", payload: buf([UInt8](repeating: 0x5A, count: 16_384))))
        ),

        // MARK: PUBACK, PUBREC, PUBREL, PUBCOMP (3.4 - 3.7)
        CodecFixture(
            "PUBACK", .v3_1_1,
            bytes: wire(
                [0x40, 0x02],  // PUBACK, remaining length 2
                [0x00, 0x0A]  // packet identifier 10
            ),
            packet: .puback(Ack(packetID: 10))
        ),
        CodecFixture(
            "PUBREC", .v3_1_1,
            bytes: wire(
                [0x50, 0x02],  // PUBREC, remaining length 2
                [0x01, 0x00]  // packet identifier 256
            ),
            packet: .pubrec(Ack(packetID: 256))
        ),
        CodecFixture(
            "PUBREL", .v3_1_1,
            bytes: wire(
                [0x62, 0x02],  // PUBREL, reserved flags 0010 [MQTT-3.6.1-1], remaining length 2
                [0x01, 0x00]  // packet identifier 256
            ),
            packet: .pubrel(Ack(packetID: 256))
        ),
        CodecFixture(
            "PUBCOMP", .v3_1_1,
            bytes: wire(
                [0x70, 0x02],  // PUBCOMP, remaining length 2
                [0xFF, 0xFE]  // packet identifier 65534
            ),
            packet: .pubcomp(Ack(packetID: 65_534))
        ),

        // MARK: SUBSCRIBE, SUBACK (3.8, 3.9)
        CodecFixture(
            "SUBSCRIBE three filters", .v3_1_1,
            bytes: wire(
                [0x82, 0x12],  // SUBSCRIBE, reserved flags 0010 [MQTT-3.8.1-1], remaining length 18 = 2 + 6 + 6 + 4
                [0x00, 0x01],  // packet identifier 1
                [0x00, 0x03], utf8("a/b"), [0x00],  // filter "a/b", requested QoS 0
                [0x00, 0x03], utf8("c/#"), [0x01],  // filter "c/#", requested QoS 1
                [0x00, 0x01], utf8("+"), [0x02]  // filter "+", requested QoS 2
            ),
            packet: .subscribe(
                Subscribe(
                    packetID: 1,
                    subscriptions: [
                        Subscription(filter: "a/b", qos: .atMostOnce),
                        Subscription(filter: "c/#", qos: .atLeastOnce),
                        Subscription(filter: "+", qos: .exactlyOnce),
                    ]))
        ),
        CodecFixture(
            "SUBACK three return codes", .v3_1_1,
            bytes: wire(
                [0x90, 0x05],  // SUBACK, remaining length 5
                [0x00, 0x01],  // packet identifier 1
                [0x00, 0x01, 0x80]  // return codes: QoS 0, QoS 1, failure
            ),
            packet: .suback(SubAck(packetID: 1, reasonCodes: [.grantedQoS0, .grantedQoS1, .unspecifiedError]))
        ),

        // MARK: UNSUBSCRIBE, UNSUBACK (3.10, 3.11)
        CodecFixture(
            "UNSUBSCRIBE two filters", .v3_1_1,
            bytes: wire(
                [0xA2, 0x0C],  // UNSUBSCRIBE, reserved flags 0010 [MQTT-3.10.1-1], remaining length 12
                [0x00, 0x02],  // packet identifier 2
                [0x00, 0x03], utf8("a/b"),  // filter
                [0x00, 0x03], utf8("c/#")  // filter
            ),
            packet: .unsubscribe(Unsubscribe(packetID: 2, filters: ["a/b", "c/#"]))
        ),
        CodecFixture(
            "UNSUBACK (no reason codes before 5.0)", .v3_1_1,
            bytes: wire(
                [0xB0, 0x02],  // UNSUBACK, remaining length 2
                [0x00, 0x02]  // packet identifier 2
            ),
            packet: .unsuback(UnsubAck(packetID: 2))
        ),

        // MARK: PINGREQ, PINGRESP, DISCONNECT (3.12 - 3.14)
        CodecFixture("PINGREQ", .v3_1_1, bytes: [0xC0, 0x00], packet: .pingreq),  // PINGREQ, remaining length 0
        CodecFixture("PINGRESP", .v3_1_1, bytes: [0xD0, 0x00], packet: .pingresp),  // PINGRESP, remaining length 0
        CodecFixture(
            "DISCONNECT", .v3_1_1,
            bytes: [0xE0, 0x00],  // DISCONNECT, remaining length 0
            packet: .disconnect(Disconnect())
        ),
        CodecFixture(
            "PUBLISH QoS 1 on a 3.1 connection", .v3_1,
            bytes: wire(
                [0x32, 0x07],  // PUBLISH QoS 1, remaining length 7
                [0x00, 0x01], utf8("t"),  // topic name
                [0x00, 0x01],  // packet identifier 1
                utf8("ok")  // payload
            ),
            packet: .publish(Publish(topic: "t", payload: buf("ok"), qos: .atLeastOnce, packetID: 1))
        ),
    ]
}
