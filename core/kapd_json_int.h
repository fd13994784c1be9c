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

/*
 * Members with a constant name, for writers of many (the audit line):
 * lit is the name as written, quotes and colon included ("\"name\":",
 * n bytes, borrowed), and must need no escaping.  _key_lit is
 * kap_json_w_key(); _member_strn is kap_json_w_key() then
 * kap_json_w_strn(s, n): the same text, in one piece when s needs no
 * escaping and the buffer has room.
 */
void kapd_json_w_key_lit(struct kap_json_writer *w, const char *lit,
                         size_t n);
void kapd_json_w_member_strn(struct kap_json_writer *w, const char *lit,
                             size_t klen, const char *s, size_t n);
/* "\"name\":" and its length, for the two above */
#define KAPD_JSON_KEY(name)  "\"" name "\":", sizeof("\"" name "\":") - 1

#endif /* KAPD_JSON_INT_H */
