#!/bin/sh
# The Event Grid subscription that puts each recording's completion event on
# a Storage Queue (one event per message, base64-encoded JSON), with the
# queues the worker uses. Run once per Communication Services resource.
# Not run by the tests (they need an Azure subscription).
set -eu

: "${RESOURCE_GROUP:?}" "${ACS_NAME:?}" "${STORAGE_ACCOUNT:?}"
QUEUE="${QUEUE:-recordings}"

# The queue and its poison queue (the worker creates the poison queue too,
# when it first needs it).
az storage queue create --account-name "$STORAGE_ACCOUNT" --auth-mode login --name "$QUEUE"
az storage queue create --account-name "$STORAGE_ACCOUNT" --auth-mode login --name "$QUEUE-poison"

ACS_ID=$(az communication show --name "$ACS_NAME" --resource-group "$RESOURCE_GROUP" --query id -o tsv)
STORAGE_ID=$(az storage account show --name "$STORAGE_ACCOUNT" --resource-group "$RESOURCE_GROUP" --query id -o tsv)

# Only the completion events; the Event Grid schema (add
# `--event-delivery-schema cloudeventschemav1_0` for CloudEvents: the worker
# reads both). The message time-to-live of -1 keeps events until a worker
# takes them; Event Grid retries delivery to the queue for up to 24 hours.
az eventgrid event-subscription create \
  --name recstitch-recordings \
  --source-resource-id "$ACS_ID" \
  --endpoint-type storagequeue \
  --endpoint "$STORAGE_ID/queueservices/default/queues/$QUEUE" \
  --included-event-types Microsoft.Communication.RecordingFileStatusUpdated \
  --storage-queue-msg-ttl -1 \
  --max-delivery-attempts 30 \
  --event-ttl 1440
