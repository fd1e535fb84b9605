"""SQS event source mappings in the sandbox, as Lambda delivers them.

moto does invoke a mapped function when a message is sent to its queue (the invocation goes through
moto's `_invoke_lambda`, so radstream.sandbox.lambda_runner runs the real handler), but it receives
the message without its message attributes and builds the record with fixed timestamps: a handler
that reads why a message is there (EventBridge's ERROR_CODE and ERROR_MESSAGE on a dead letter)
would read nothing. `install()` builds the record from the message as the queue holds it. What moto does not do, and this does not either: poll
again later, so a message whose invocation failed waits for the queue's next SendMessage."""

from __future__ import annotations

import json
from typing import Any


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda's SQS event shows it (camelCase, list fields always there)."""
    shown: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        shown["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        shown["binaryValue"] = value["BinaryValue"]
    return shown


def _stored_attributes(queue_arn: str, message: Any) -> dict[str, Any]:
    """The message attributes of the queue's own copy (moto's receive drops those not asked for)."""
    from moto.sqs.models import sqs_backends

    _, _, _, region, account, name = queue_arn.split(":", 5)
    stored = next((m for m in sqs_backends[account][region].get_queue(name)._messages if m.id == message.id), message)
    return dict(stored.message_attributes)


def lambda_record(message: Any, queue_arn: str, region: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """One entry of the Records list Lambda hands a function mapped to the queue."""
    return {
        "messageId": message.id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": {
            "ApproximateReceiveCount": str(message.approximate_receive_count),
            "SentTimestamp": str(message.sent_timestamp),
            "SenderId": message.sender_id,
            "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
        },
        "messageAttributes": {name: _attribute(value) for name, value in attributes.items()},
        "md5OfBody": message.body_md5,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def install() -> None:
    from moto.awslambda.models import LambdaBackend

    if getattr(LambdaBackend._send_sqs_message, "radstream_patched", False):
        return

    def send_sqs_message(self: Any, function_arn: str, message: Any, queue_arn: str) -> bool:
        response_headers: dict[str, Any] = {}
        record = lambda_record(message, queue_arn, self.region_name, _stored_attributes(queue_arn, message))
        if queue_arn.endswith(".fifo"):
            record["attributes"] |= {"MessageGroupId": message.group_id,
                                     "MessageDeduplicationId": message.deduplication_id}
        body = json.dumps({"Records": [record]})
        self.invoke(function_name=function_arn, qualifier=None, body=body, headers={},
                    response_headers=response_headers)
        return "x-amz-function-error" not in response_headers

    send_sqs_message.radstream_patched = True  # type: ignore[attr-defined]
    LambdaBackend._send_sqs_message = send_sqs_message  # type: ignore[method-assign]  # the patch is the point
