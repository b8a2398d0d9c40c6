import MQTTCodec
import NIOCore

// MQTT 5.0 fixtures, written from the OASIS MQTT 5.0 standard (chapter 3, properties in 2.2.2.2).
// The order of properties carries no meaning (2.2.2.2); the encoder writes them in ascending
// identifier order, user properties in the order given, so the bytes below do too.

extension CodecFixture {
    static let mqtt5: [CodecFixture] = connect5 + publish5 + acks5 + subscriptions5 + others5

    // MARK: CONNECT, CONNACK (5.0 sections 3.1, 3.2)

    static let connect5: [CodecFixture] = [
        CodecFixture(
            "CONNECT minimal", .v5,
            bytes: wire(
                [0x10, 0x12],  // CONNECT, remaining length 18 = 10 + 1 + 7
                [0x00, 0x04], utf8("MQTT"),  // protocol name
                [0x05],  // protocol version 5
                [0x02],  // connect flags: clean start
                [0x00, 0x3C],  // keep alive 60 s
                [0x00],  // property length 0
                [0x00, 0x05], utf8("roost")  // client identifier
            ),
            packet: .connect(Connect(version: .v5, cleanStart: true, keepAlive: 60, clientID: "roost"))
        ),
        CodecFixture(
            "CONNECT with properties, will properties, user name and password", .v5,
            bytes: wire(
                [0x10, 0xA3, 0x01],  // CONNECT, remaining length 163 = 0x23 + 1 * 128: 10 + 61 + 8 + 51 + 15 + 9 + 5 + 4
                [0x00, 0x04], utf8("MQTT"),  // protocol name
                [0x05],  // protocol version 5
                [0xF6],  // flags: user 0x80 | password 0x40 | will retain 0x20 | will QoS 2 0x10 | will 0x04 | clean 0x02
                [0x00, 0x1E],  // keep alive 30 s
                [0x3C],  // property length 60
                [0x11, 0x00, 0x00, 0x0E, 0x10],  // session expiry interval 3600
                [0x15, 0x00, 0x05], utf8("SCRAM"),  // authentication method
                [0x16, 0x00, 0x03, 0x01, 0x02, 0x03],  // authentication data
                [0x17, 0x00],  // request problem information 0
                [0x19, 0x01],  // request response information 1
                [0x21, 0x00, 0x14],  // receive maximum 20
                [0x22, 0x00, 0x0A],  // topic alias maximum 10
                [0x26, 0x00, 0x06], utf8("region"), [0x00, 0x02], utf8("eu"),  // user property region=eu
                [0x26, 0x00, 0x06], utf8("region"), [0x00, 0x02], utf8("us"),  // user property region=us (same name again)
                [0x27, 0x00, 0x10, 0x00, 0x00],  // maximum packet size 1 MiB
                [0x00, 0x06], utf8("dev-42"),  // client identifier
                [0x32],  // will property length 50
                [0x01, 0x01],  // payload format indicator 1 (UTF-8)
                [0x02, 0x00, 0x00, 0x00, 0x3C],  // message expiry interval 60
                [0x03, 0x00, 0x0A], utf8("text/plain"),  // content type
                [0x08, 0x00, 0x0A], utf8("reply/here"),  // response topic
                [0x09, 0x00, 0x02, 0xCA, 0xFE],  // correlation data
                [0x18, 0x00, 0x00, 0x00, 0x05],  // will delay interval 5
                [0x26, 0x00, 0x01], utf8("k"), [0x00, 0x01], utf8("v"),  // user property k=v
                [0x00, 0x0D], utf8("dev/42/status"),  // will topic
                [0x00, 0x07], utf8("offline"),  // will payload
                [0x00, 0x03], utf8("bob"),  // user name
                [0x00, 0x02], utf8("pw")  // password
            ),
            packet: .connect(
                Connect(
                    version: .v5, cleanStart: true, keepAlive: 30, clientID: "dev-42", username: "bob",
                    password: buf("pw"),
                    will: Will(
                        topic: "dev/42/status", payload: buf("offline"), qos: .exactlyOnce, retain: true,
                        properties: props {
                            $0.payloadFormatIndicator = 1
                            $0.messageExpiryInterval = 60
                            $0.contentType = "text/plain"
                            $0.responseTopic = "reply/here"
                            $0.correlationData = buf([0xCA, 0xFE])
                            $0.willDelayInterval = 5
                            $0.userProperties = [UserProperty(name: "k", value: "v")]
                        }),
                    properties: props {
                        $0.sessionExpiryInterval = 3600
                        $0.authenticationMethod = "SCRAM"
                        $0.authenticationData = buf([0x01, 0x02, 0x03])
                        $0.requestProblemInformation = 0
                        $0.requestResponseInformation = 1
                        $0.receiveMaximum = 20
                        $0.topicAliasMaximum = 10
                        $0.userProperties = [
                            UserProperty(name: "region", value: "eu"), UserProperty(name: "region", value: "us"),
                        ]
                        $0.maximumPacketSize = 1_048_576
                    }))
        ),
        CodecFixture(
            "CONNECT with password but no user name (allowed in 5.0)", .v5,
            bytes: wire(
                [0x10, 0x11],  // CONNECT, remaining length 17 = 10 + 1 + 2 + 4
                [0x00, 0x04], utf8("MQTT"),  // protocol name
                [0x05],  // protocol version 5
                [0x40],  // flags: password 0x40, no clean start
                [0x00, 0x00],  // keep alive 0: off
                [0x00],  // property length 0
                [0x00, 0x00],  // client identifier: empty
                [0x00, 0x02], [0x00, 0x01]  // password: binary 00 01
            ),
            packet: .connect(
                Connect(version: .v5, cleanStart: false, keepAlive: 0, clientID: "", password: buf([0x00, 0x01])))
        ),
        CodecFixture(
            "CONNACK minimal", .v5,
            bytes: wire(
                [0x20, 0x03],  // CONNACK, remaining length 3
                [0x00],  // acknowledge flags
                [0x00],  // reason code success
                [0x00]  // property length 0
            ),
            packet: .connack(ConnAck())
        ),
        CodecFixture(
            "CONNACK with properties", .v5,
            bytes: wire(
                [0x20, 0x37],  // CONNACK, remaining length 55 = 2 + 1 + 52
                [0x01],  // acknowledge flags: session present
                [0x00],  // reason code success
                [0x34],  // property length 52
                [0x11, 0x00, 0x00, 0x00, 0x78],  // session expiry interval 120
                [0x12, 0x00, 0x08], utf8("auto-123"),  // assigned client identifier
                [0x13, 0x00, 0x1E],  // server keep alive 30
                [0x1F, 0x00, 0x02], utf8("ok"),  // reason string
                [0x21, 0x00, 0x64],  // receive maximum 100
                [0x22, 0x00, 0x05],  // topic alias maximum 5
                [0x24, 0x01],  // maximum QoS 1
                [0x25, 0x00],  // retain available 0
                [0x26, 0x00, 0x01], utf8("a"), [0x00, 0x01], utf8("b"),  // user property a=b
                [0x27, 0x00, 0x00, 0xFF, 0xFF],  // maximum packet size 65535
                [0x28, 0x01],  // wildcard subscription available 1
                [0x29, 0x00],  // subscription identifiers available 0
                [0x2A, 0x01]  // shared subscription available 1
            ),
            packet: .connack(
                ConnAck(
                    sessionPresent: true, reasonCode: .success,
                    properties: props {
                        $0.sessionExpiryInterval = 120
                        $0.assignedClientIdentifier = "auto-123"
                        $0.serverKeepAlive = 30
                        $0.reasonString = "ok"
                        $0.receiveMaximum = 100
                        $0.topicAliasMaximum = 5
                        $0.maximumQoS = 1
                        $0.retainAvailable = 0
                        $0.userProperties = [UserProperty(name: "a", value: "b")]
                        $0.maximumPacketSize = 65_535
                        $0.wildcardSubscriptionAvailable = 1
                        $0.subscriptionIdentifierAvailable = 0
                        $0.sharedSubscriptionAvailable = 1
                    }))
        ),
        CodecFixture(
            "CONNACK refused, use another server", .v5,
            bytes: wire(
                [0x20, 0x11],  // CONNACK, remaining length 17 = 2 + 1 + 14
                [0x00],  // acknowledge flags
                [0x9C],  // reason code 0x9C use another server
                [0x0E],  // property length 14
                [0x1C, 0x00, 0x0B], utf8("backup:1883")  // server reference
            ),
            packet: .connack(
                ConnAck(reasonCode: .useAnotherServer, properties: props { $0.serverReference = "backup:1883" }))
        ),
    ]

    // MARK: PUBLISH (3.3)

    static let publish5: [CodecFixture] = [
        CodecFixture(
            "PUBLISH QoS 0 without properties", .v5,
            bytes: wire(
                [0x30, 0x08],  // PUBLISH QoS 0, remaining length 8
                [0x00, 0x03], utf8("a/b"),  // topic name
                [0x00],  // property length 0
                utf8("hi")  // payload
            ),
            packet: .publish(Publish(topic: "a/b", payload: buf("hi")))
        ),
        CodecFixture(
            "PUBLISH QoS 1 retain with every PUBLISH property", .v5,
            bytes: wire(
                [0x33, 0x5B],  // PUBLISH, flags 0011 (QoS 1, RETAIN), remaining length 91 = 11 + 2 + 1 + 69 + 8
                [0x00, 0x09], utf8("sensors/t"),  // topic name
                [0x00, 0x07],  // packet identifier 7
                [0x45],  // property length 69
                [0x01, 0x01],  // payload format indicator 1
                [0x02, 0x00, 0x00, 0x01, 0x2C],  // message expiry interval 300
                [0x03, 0x00, 0x10], utf8("application/json"),  // content type
                [0x08, 0x00, 0x0B], utf8("replies/abc"),  // response topic
                [0x09, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF],  // correlation data
                [0x0B, 0x05],  // subscription identifier 5
                [0x0B, 0x80, 0x01],  // subscription identifier 128 (variable byte integer)
                [0x23, 0x00, 0x03],  // topic alias 3
                [0x26, 0x00, 0x01], utf8("z"), [0x00, 0x01], utf8("1"),  // user property z=1
                [0x26, 0x00, 0x01], utf8("a"), [0x00, 0x01], utf8("2"),  // user property a=2 (order kept, not sorted)
                utf8("{\"t\":21}")  // payload
            ),
            packet: .publish(
                Publish(
                    topic: "sensors/t", payload: buf("{\"t\":21}"), qos: .atLeastOnce, retain: true, packetID: 7,
                    properties: props {
                        $0.payloadFormatIndicator = 1
                        $0.messageExpiryInterval = 300
                        $0.contentType = "application/json"
                        $0.responseTopic = "replies/abc"
                        $0.correlationData = buf([0xDE, 0xAD, 0xBE, 0xEF])
                        $0.subscriptionIdentifiers = [5, 128]
                        $0.topicAlias = 3
                        $0.userProperties = [UserProperty(name: "z", value: "1"), UserProperty(name: "a", value: "2")]
                    }))
        ),
        CodecFixture(
            "PUBLISH QoS 2 DUP with topic alias and empty topic", .v5,
            bytes: wire(
                [0x3C, 0x09],  // PUBLISH, flags 1100 (DUP, QoS 2), remaining length 9
                [0x00, 0x00],  // topic name: empty, the alias stands for it (3.3.2.3.4)
                [0x00, 0x09],  // packet identifier 9
                [0x03],  // property length 3
                [0x23, 0x00, 0x01],  // topic alias 1
                utf8("x")  // payload
            ),
            packet: .publish(
                Publish(
                    topic: "", payload: buf("x"), qos: .exactlyOnce, dup: true, packetID: 9,
                    properties: props { $0.topicAlias = 1 }))
        ),
        CodecFixture(
            "PUBLISH QoS 0 retain with the largest subscription identifier", .v5,
            bytes: wire(
                [0x31, 0x09],  // PUBLISH, flags 0001 (RETAIN), remaining length 9
                [0x00, 0x01], utf8("t"),  // topic name
                [0x05],  // property length 5
                [0x0B, 0xFF, 0xFF, 0xFF, 0x7F]  // subscription identifier 268,435,455; no payload
            ),
            packet: .publish(
                Publish(
                    topic: "t", payload: ByteBuffer(), retain: true,
                    properties: props { $0.subscriptionIdentifiers = [268_435_455] }))
        ),
    ]

    // MARK: PUBACK, PUBREC, PUBREL, PUBCOMP (3.4 - 3.7)

    static let acks5: [CodecFixture] = [
        // The short form: reason code 0 and no properties may be left out (3.4.2.1).
        CodecFixture(
            "PUBACK short form", .v5,
            bytes: wire([0x40, 0x02], [0x00, 0x01]),  // PUBACK, remaining length 2; packet identifier 1
            packet: .puback(Ack(packetID: 1))
        ),
        CodecFixture(
            "PUBREC short form", .v5,
            bytes: wire([0x50, 0x02], [0x00, 0x02]),  // PUBREC, remaining length 2; packet identifier 2
            packet: .pubrec(Ack(packetID: 2))
        ),
        CodecFixture(
            "PUBREL short form", .v5,
            bytes: wire([0x62, 0x02], [0x00, 0x03]),  // PUBREL (flags 0010), remaining length 2; packet identifier 3
            packet: .pubrel(Ack(packetID: 3))
        ),
        CodecFixture(
            "PUBCOMP short form", .v5,
            bytes: wire([0x70, 0x02], [0x00, 0x04]),  // PUBCOMP, remaining length 2; packet identifier 4
            packet: .pubcomp(Ack(packetID: 4))
        ),
        // Reason code without properties: the property length may be left out (3.4.2.2).
        CodecFixture(
            "PUBACK with reason code", .v5,
            bytes: wire(
                [0x40, 0x03],  // PUBACK, remaining length 3
                [0x00, 0x01],  // packet identifier 1
                [0x10]  // reason code 0x10 no matching subscribers
            ),
            packet: .puback(Ack(packetID: 1, reasonCode: .noMatchingSubscribers))
        ),
        CodecFixture(
            "PUBREC with reason code", .v5,
            bytes: wire(
                [0x50, 0x03],  // PUBREC, remaining length 3
                [0x00, 0x02],  // packet identifier 2
                [0x97]  // reason code 0x97 quota exceeded
            ),
            packet: .pubrec(Ack(packetID: 2, reasonCode: .quotaExceeded))
        ),
        CodecFixture(
            "PUBREL with reason code", .v5,
            bytes: wire(
                [0x62, 0x03],  // PUBREL, remaining length 3
                [0x00, 0x03],  // packet identifier 3
                [0x92]  // reason code 0x92 packet identifier not found
            ),
            packet: .pubrel(Ack(packetID: 3, reasonCode: .packetIdentifierNotFound))
        ),
        CodecFixture(
            "PUBCOMP with reason code", .v5,
            bytes: wire(
                [0x70, 0x03],  // PUBCOMP, remaining length 3
                [0x00, 0x04],  // packet identifier 4
                [0x92]  // reason code 0x92 packet identifier not found
            ),
            packet: .pubcomp(Ack(packetID: 4, reasonCode: .packetIdentifierNotFound))
        ),
        // Reason code and properties.
        CodecFixture(
            "PUBACK with reason code and properties", .v5,
            bytes: wire(
                [0x40, 0x0D],  // PUBACK, remaining length 13 = 2 + 1 + 1 + 9
                [0x00, 0x05],  // packet identifier 5
                [0x87],  // reason code 0x87 not authorized
                [0x09],  // property length 9
                [0x1F, 0x00, 0x06], utf8("denied")  // reason string
            ),
            packet: .puback(Ack(packetID: 5, reasonCode: .notAuthorized, properties: props { $0.reasonString = "denied" }))
        ),
        CodecFixture(
            "PUBACK success with a user property (long form)", .v5,
            bytes: wire(
                [0x40, 0x0B],  // PUBACK, remaining length 11 = 2 + 1 + 1 + 7
                [0x00, 0x06],  // packet identifier 6
                [0x00],  // reason code success, written because properties follow
                [0x07],  // property length 7
                [0x26, 0x00, 0x01], utf8("k"), [0x00, 0x01], utf8("v")  // user property k=v
            ),
            packet: .puback(
                Ack(packetID: 6, properties: props { $0.userProperties = [UserProperty(name: "k", value: "v")] }))
        ),
        CodecFixture(
            "PUBREC with reason code and properties", .v5,
            bytes: wire(
                [0x50, 0x12],  // PUBREC, remaining length 18 = 2 + 1 + 1 + 14
                [0x00, 0x02],  // packet identifier 2
                [0x80],  // reason code 0x80 unspecified error
                [0x0E],  // property length 14
                [0x1F, 0x00, 0x04], utf8("full"),  // reason string
                [0x26, 0x00, 0x01], utf8("k"), [0x00, 0x01], utf8("v")  // user property k=v
            ),
            packet: .pubrec(
                Ack(
                    packetID: 2, reasonCode: .unspecifiedError,
                    properties: props {
                        $0.reasonString = "full"
                        $0.userProperties = [UserProperty(name: "k", value: "v")]
                    }))
        ),
        CodecFixture(
            "PUBREL with reason code and properties", .v5,
            bytes: wire(
                [0x62, 0x09],  // PUBREL, remaining length 9 = 2 + 1 + 1 + 5
                [0x00, 0x03],  // packet identifier 3
                [0x92],  // reason code 0x92 packet identifier not found
                [0x05],  // property length 5
                [0x1F, 0x00, 0x02], utf8("no")  // reason string
            ),
            packet: .pubrel(
                Ack(packetID: 3, reasonCode: .packetIdentifierNotFound, properties: props { $0.reasonString = "no" }))
        ),
        CodecFixture(
            "PUBCOMP with reason code and properties", .v5,
            bytes: wire(
                [0x70, 0x09],  // PUBCOMP, remaining length 9 = 2 + 1 + 1 + 5
                [0x00, 0x04],  // packet identifier 4
                [0x92],  // reason code 0x92 packet identifier not found
                [0x05],  // property length 5
                [0x1F, 0x00, 0x02], utf8("no")  // reason string
            ),
            packet: .pubcomp(
                Ack(packetID: 4, reasonCode: .packetIdentifierNotFound, properties: props { $0.reasonString = "no" }))
        ),
    ]

    // MARK: SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (3.8 - 3.11)

    static let subscriptions5: [CodecFixture] = [
        CodecFixture(
            "SUBSCRIBE with options and subscription identifier", .v5,
            bytes: wire(
                [0x82, 0x23],  // SUBSCRIBE (flags 0010), remaining length 35 = 2 + 1 + 9 + 6 + 13 + 4
                [0x00, 0x0B],  // packet identifier 11
                [0x09],  // property length 9
                [0x0B, 0x2A],  // subscription identifier 42
                [0x26, 0x00, 0x01], utf8("p"), [0x00, 0x01], utf8("q"),  // user property p=q
                [0x00, 0x03], utf8("a/+"),  // filter
                [0x1D],  // options: retain handling 1 (0x10) | RAP 0x08 | no local 0x04 | QoS 1
                [0x00, 0x0A], utf8("$share/g/x"),  // filter: a shared subscription
                [0x22],  // options: retain handling 2 (0x20) | QoS 2
                [0x00, 0x01], utf8("#"),  // filter
                [0x00]  // options: all clear, QoS 0
            ),
            packet: .subscribe(
                Subscribe(
                    packetID: 11,
                    subscriptions: [
                        Subscription(
                            filter: "a/+", qos: .atLeastOnce, noLocal: true, retainAsPublished: true,
                            retainHandling: .sendIfNew),
                        Subscription(filter: "$share/g/x", qos: .exactlyOnce, retainHandling: .doNotSend),
                        Subscription(filter: "#"),
                    ],
                    properties: props {
                        $0.subscriptionIdentifiers = [42]
                        $0.userProperties = [UserProperty(name: "p", value: "q")]
                    }))
        ),
        CodecFixture(
            "SUBACK without properties", .v5,
            bytes: wire(
                [0x90, 0x04],  // SUBACK, remaining length 4
                [0x00, 0x0C],  // packet identifier 12
                [0x00],  // property length 0
                [0x00]  // reason code granted QoS 0
            ),
            packet: .suback(SubAck(packetID: 12, reasonCodes: [.grantedQoS0]))
        ),
        CodecFixture(
            "SUBACK with reason string", .v5,
            bytes: wire(
                [0x90, 0x0C],  // SUBACK, remaining length 12 = 2 + 1 + 5 + 4
                [0x00, 0x0B],  // packet identifier 11
                [0x05],  // property length 5
                [0x1F, 0x00, 0x02], utf8("ok"),  // reason string
                [0x01, 0x02, 0x00, 0x87]  // reason codes: QoS 1, QoS 2, QoS 0, not authorized
            ),
            packet: .suback(
                SubAck(
                    packetID: 11, reasonCodes: [.grantedQoS1, .grantedQoS2, .grantedQoS0, .notAuthorized],
                    properties: props { $0.reasonString = "ok" }))
        ),
        CodecFixture(
            "UNSUBSCRIBE with user property", .v5,
            bytes: wire(
                [0xA2, 0x12],  // UNSUBSCRIBE (flags 0010), remaining length 18 = 2 + 1 + 7 + 5 + 3
                [0x00, 0x0D],  // packet identifier 13
                [0x07],  // property length 7
                [0x26, 0x00, 0x01], utf8("x"), [0x00, 0x01], utf8("y"),  // user property x=y
                [0x00, 0x03], utf8("a/+"),  // filter
                [0x00, 0x01], utf8("#")  // filter
            ),
            packet: .unsubscribe(
                Unsubscribe(
                    packetID: 13, filters: ["a/+", "#"],
                    properties: props { $0.userProperties = [UserProperty(name: "x", value: "y")] }))
        ),
        CodecFixture(
            "UNSUBACK with reason codes", .v5,
            bytes: wire(
                [0xB0, 0x05],  // UNSUBACK, remaining length 5
                [0x00, 0x0D],  // packet identifier 13
                [0x00],  // property length 0
                [0x00, 0x11]  // reason codes: success, no subscription existed
            ),
            packet: .unsuback(UnsubAck(packetID: 13, reasonCodes: [.success, .noSubscriptionExisted]))
        ),
        CodecFixture(
            "UNSUBACK with reason string", .v5,
            bytes: wire(
                [0xB0, 0x0B],  // UNSUBACK, remaining length 11 = 2 + 1 + 7 + 1
                [0x00, 0x0E],  // packet identifier 14
                [0x07],  // property length 7
                [0x1F, 0x00, 0x04], utf8("nope"),  // reason string
                [0x87]  // reason code not authorized
            ),
            packet: .unsuback(
                UnsubAck(packetID: 14, reasonCodes: [.notAuthorized], properties: props { $0.reasonString = "nope" }))
        ),
    ]

    // MARK: PINGREQ, PINGRESP, DISCONNECT, AUTH (3.12 - 3.15)

    static let others5: [CodecFixture] = [
        CodecFixture("PINGREQ", .v5, bytes: [0xC0, 0x00], packet: .pingreq),  // PINGREQ, remaining length 0
        CodecFixture("PINGRESP", .v5, bytes: [0xD0, 0x00], packet: .pingresp),  // PINGRESP, remaining length 0
        CodecFixture(
            "DISCONNECT short form", .v5,
            bytes: [0xE0, 0x00],  // DISCONNECT, remaining length 0: reason 0x00 normal disconnection (3.14.2.1)
            packet: .disconnect(Disconnect())
        ),
        CodecFixture(
            "DISCONNECT with reason code only", .v5,
            bytes: wire(
                [0xE0, 0x01],  // DISCONNECT, remaining length 1: the property length may be left out
                [0x04]  // reason code 0x04 disconnect with will message
            ),
            packet: .disconnect(Disconnect(reasonCode: .disconnectWithWillMessage))
        ),
        CodecFixture(
            "DISCONNECT with reason, session expiry and reason string", .v5,
            bytes: wire(
                [0xE0, 0x0D],  // DISCONNECT, remaining length 13 = 1 + 1 + 11
                [0x8B],  // reason code 0x8B server shutting down
                [0x0B],  // property length 11
                [0x11, 0x00, 0x00, 0x00, 0x0A],  // session expiry interval 10
                [0x1F, 0x00, 0x03], utf8("bye")  // reason string
            ),
            packet: .disconnect(
                Disconnect(
                    reasonCode: .serverShuttingDown,
                    properties: props {
                        $0.sessionExpiryInterval = 10
                        $0.reasonString = "bye"
                    }))
        ),
        CodecFixture(
            "DISCONNECT with server reference", .v5,
            bytes: wire(
                [0xE0, 0x10],  // DISCONNECT, remaining length 16 = 1 + 1 + 14
                [0x9C],  // reason code 0x9C use another server
                [0x0E],  // property length 14
                [0x1C, 0x00, 0x0B], utf8("backup:1883")  // server reference
            ),
            packet: .disconnect(
                Disconnect(reasonCode: .useAnotherServer, properties: props { $0.serverReference = "backup:1883" }))
        ),
        CodecFixture(
            "AUTH short form", .v5,
            bytes: [0xF0, 0x00],  // AUTH, remaining length 0: reason 0x00 success, no properties (3.15.2.1)
            packet: .auth(Auth())
        ),
        CodecFixture(
            "AUTH continue authentication with method and data", .v5,
            bytes: wire(
                [0xF0, 0x11],  // AUTH, remaining length 17 = 1 + 1 + 15
                [0x18],  // reason code 0x18 continue authentication
                [0x0F],  // property length 15
                [0x15, 0x00, 0x05], utf8("SCRAM"),  // authentication method
                [0x16, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04]  // authentication data
            ),
            packet: .auth(
                Auth(
                    reasonCode: .continueAuthentication,
                    properties: props {
                        $0.authenticationMethod = "SCRAM"
                        $0.authenticationData = buf([0x01, 0x02, 0x03, 0x04])
                    }))
        ),
        CodecFixture(
            "AUTH re-authenticate without properties", .v5,
            bytes: wire(
                [0xF0, 0x02],  // AUTH, remaining length 2
                [0x19],  // reason code 0x19 re-authenticate
                [0x00]  // property length 0
            ),
            packet: .auth(Auth(reasonCode: .reAuthenticate))
        ),
    ]
}
