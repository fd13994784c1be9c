/*
 * kapd_json_int.h -- what kapd_json.c (parse, look-up) and
 * kapd_json_writer.c (writer, printing a tree) share: the opaque
 * struct kap_json is a cJSON node.
 *
 * A number node of a tree parsed in strict mode carries the checked text
 * of its number in valuestring (allocated with cJSON_malloc, so
 * cJSON_Delete frees it); kap_json_print() writes that text.  Without it
 * (KAP_JSON_LOOSE_NUMBERS) the printer writes the double.
 */
#ifndef KAPD_JSON_INT_H
#define KAPD_JSON_INT_H

#include <cjson/cJSON.h>
#include <kapd/kap_json.h>

#define KAPD_JSON_C(j)  ((const cJSON *)(const void *)(j))
#define KAPD_JSON_K(c)  ((const struct kap_json *)(const void *)(c))

#endif /* KAPD_JSON_INT_H */
