"""Kafka beside the store: the relay (store to topics, in store order, in transactions), the
outbound wire messages, topic creation and the AsyncAPI documents."""
