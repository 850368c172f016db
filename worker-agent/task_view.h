/*
 * task_view.h - what of a task's data the agents show an annotator.
 *
 * Keys of a task's data object that start with "_" are for tools, not for
 * annotators (docs/API.md, "Task data"): the sample data keeps the truth
 * the simulated crew labels from under "_true_label". `label` does not
 * display them and `exec` does not hand them to its command; `simulate`
 * reads them. The broker still returns them in a lease, so they hide
 * nothing from a determined annotator: they keep the answer off the screen.
 */
#ifndef QR_TASK_VIEW_H
#define QR_TASK_VIEW_H

#include <jansson.h>

/* 1 when a data key is hidden from annotators. */
static inline int qr_task_key_hidden(const char *key)
{
    return key[0] == '_';
}

/* The data an annotator sees: a new reference to data itself when nothing
 * is hidden or it is not an object, else a shallow copy without the hidden
 * keys. The caller json_decrefs it. NULL only when data is NULL or jansson
 * runs out of memory. */
static inline json_t *qr_task_visible_data(json_t *data)
{
    const char *key;
    json_t *v;
    int hidden = 0;
    if (!json_is_object(data))
        return json_incref(data);
    json_object_foreach(data, key, v) hidden |= qr_task_key_hidden(key);
    if (!hidden)
        return json_incref(data);
    json_t *copy = json_object();
    json_object_foreach(data, key, v)
    {
        if (copy && !qr_task_key_hidden(key) && json_object_set(copy, key, v) < 0) {
            json_decref(copy);
            return NULL;
        }
    }
    return copy;
}

#endif
