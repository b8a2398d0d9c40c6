import MQTTCodec
