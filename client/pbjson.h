/* pbjson.h - any protobuf-c message as JSON, by reflection over its descriptor (client-internal).
 *
 * Field names are the .proto names (snake_case, as Triton's JSON model configuration uses),
 * enums print by value name, 64-bit integers as JSON numbers, bytes as base64, maps
 * (repeated *Entry messages with key/value) as objects. Every scalar and repeated field is
 * printed, default values included; unset sub-messages and unselected oneof members are not.
 */
#ifndef ACC_CLIENT_PBJSON_H
#define ACC_CLIENT_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* A new JSON object for msg (never NULL; the caller drops it with json_decref). */
json_t *pbjson_from_message(const ProtobufCMessage *msg);

#endif
