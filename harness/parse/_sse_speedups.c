/* Optional C speedup for harness/parse/sse.py: the run of plain "data: <value>" LF LF (or CRLF CRLF) events that makes
 * up almost all of an LLM stream. Everything else (other fields, CR, comments, BOM, too-long lines, invalid UTF-8, partial
 * lines) stays in the pure-Python parser, which is also the fallback when this module is not built.
 *
 * Why C: in pure Python, finding the lines and building one event object costs about as much as httpx-sse spends
 * on the whole event, so the parser could not reach its speed target however the Python was arranged. Here a run
 * costs one memchr, one UTF-8 decode and one allocation per event.
 *
 * The events are real harness.parse.sse_base.SSEEvent instances (a frozen dataclass with slots): the type is registered once
 * by configure(), which reads the byte offset of each slot from its member descriptor, so an event is allocated
 * with the type's own tp_alloc and its slots filled directly, as the dataclass's __init__ would fill them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#ifndef Py_T_OBJECT_EX
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

enum { F_EVENT, F_DATA, F_ID, F_RETRY, F_T, F_OFFSET, N_FIELDS };
static const char *field_names[N_FIELDS] = {"event", "data", "id", "retry", "t", "offset"};

static PyTypeObject *event_type = NULL;      /* SSEEvent, once configured */
static Py_ssize_t slot_offset[N_FIELDS];     /* byte offset of each slot in an instance */
static PyObject *message_str = NULL;         /* the interned default event type, "message" */

#define SLOT(obj, f) (*(PyObject **)((char *)(obj) + slot_offset[f]))

static PyObject *
configure(PyObject *module, PyObject *type)
{
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "configure() needs the SSEEvent class");
        return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)type;
    /* A class defined in Python (a heap type: its tp_dict is always set, unlike a static built-in's on 3.12+). */
    if (!PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE) || tp->tp_dict == NULL) {
        PyErr_SetString(PyExc_TypeError, "configure() needs the SSEEvent class");
        return NULL;
    }
    /* Exactly the six slots: a field added to SSEEvent but unknown here would be left unset in every event. */
    if (tp->tp_basicsize != (Py_ssize_t)(sizeof(PyObject) + N_FIELDS * sizeof(PyObject *))) {
        PyErr_SetString(PyExc_TypeError, "SSEEvent's layout is not the six slots the C scanner fills");
        return NULL;
    }
    Py_ssize_t offsets[N_FIELDS];
    for (int i = 0; i < N_FIELDS; i++) {
        /* The descriptor must be the class's own slot holding an object: anything else (a property, a slot
         * inherited or of another kind) would make the direct write below wrong, so refuse it. */
        PyObject *descr = PyDict_GetItemString(tp->tp_dict, field_names[i]);
        if (descr == NULL || Py_TYPE(descr) != &PyMemberDescr_Type || PyDescr_TYPE(descr) != tp) {
            PyErr_Format(PyExc_TypeError, "SSEEvent.%s is not a slot", field_names[i]);
            return NULL;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != Py_T_OBJECT_EX || member->offset < (Py_ssize_t)sizeof(PyObject)
                || member->offset + (Py_ssize_t)sizeof(PyObject *) > tp->tp_basicsize) {
            PyErr_Format(PyExc_TypeError, "SSEEvent.%s is not an object slot", field_names[i]);
            return NULL;
        }
        for (int j = 0; j < i; j++) {
            if (offsets[j] == member->offset) {
                PyErr_Format(PyExc_TypeError, "SSEEvent.%s shares a slot with another field", field_names[i]);
                return NULL;
            }
        }
        offsets[i] = member->offset;
    }
    memcpy(slot_offset, offsets, sizeof offsets);
    Py_INCREF(type);
    Py_XSETREF(event_type, tp);
    Py_RETURN_NONE;
}

/* scan_data_events(buf, pos, stop, base, t, event_id, max_line, out) -> int
 *
 * From buf[pos] (the start of a line, with no event block open), append one SSEEvent to `out` for each block
 * that is exactly  "data: " <value> LF LF  (or CRLF CRLF) and ends at or before `stop`, where the value holds
 * no CR or LF, is valid UTF-8, and its line is at most `max_line` bytes. Returns the offset of the first byte not consumed: the
 * start of the first block of any other shape, which the caller parses the general way (with its findings).
 * Each event gets type "message", the given last event ID, no retry, arrival time `t` and stream offset
 * `base` + its position in buf. Such a block has nothing to report, so no finding is lost by taking it here.
 */
static PyObject *
scan_data_events(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "scan_data_events() takes 8 arguments");
        return NULL;
    }
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "scan_data_events() before configure()");
        return NULL;
    }
    PyObject *buf = args[0], *t = args[4], *event_id = args[5], *out = args[7];
    if (!PyBytes_CheckExact(buf) || !PyUnicode_CheckExact(event_id) || !PyList_CheckExact(out)) {
        PyErr_SetString(PyExc_TypeError, "scan_data_events(bytes, int, int, int, t, str, int, list)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t stop = PyLong_AsSsize_t(args[2]);
    Py_ssize_t base = PyLong_AsSsize_t(args[3]);
    Py_ssize_t max_line = PyLong_AsSsize_t(args[6]);
    if ((pos == -1 || stop == -1 || base == -1 || max_line == -1) && PyErr_Occurred()) {
        return NULL;
    }
    const char *s = PyBytes_AS_STRING(buf);
    Py_ssize_t n = PyBytes_GET_SIZE(buf);
    if (stop > n) {
        stop = n;
    }
    if (pos < 0) {
        pos = 0;
    }
    while (stop - pos >= 8 && memcmp(s + pos, "data: ", 6) == 0) {
        const char *value = s + pos + 6;
        const char *nl = memchr(value, '\n', (size_t)(stop - pos - 6));
        if (nl == NULL) {
            break;
        }
        Py_ssize_t line_end = nl - s;  /* the data line's LF */
        Py_ssize_t value_end = line_end, next;
        if (value_end > pos + 6 && s[value_end - 1] == '\r') {
            /* CRLF endings (as sse-starlette sends them): the blank line must be CRLF too. The caller counts the
             * CRs of the bytes taken (each one half of a CRLF) to record the line-ending finding. */
            value_end--;
            if (line_end + 2 >= stop || s[line_end + 1] != '\r' || s[line_end + 2] != '\n') {
                break;
            }
            next = line_end + 3;
        }
        else {
            if (line_end + 1 >= stop || s[line_end + 1] != '\n') {
                break;  /* another line follows in the same block, or the blank line is not in reach */
            }
            next = line_end + 2;
        }
        if (value_end - pos > max_line) {
            break;  /* the general path reports and discards a too-long line */
        }
        Py_ssize_t len = value_end - (pos + 6);
        if (memchr(value, '\r', (size_t)len) != NULL) {
            break;  /* a lone CR ends a line too: the general path splits it and reports the ending */
        }
        PyObject *text = PyUnicode_DecodeUTF8(value, len, NULL);
        if (text == NULL) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                break;  /* the general path reports each invalid sequence */
            }
            return NULL;
        }
        PyObject *offset = PyLong_FromSsize_t(base + pos);
        if (offset == NULL) {
            Py_DECREF(text);
            return NULL;
        }
        PyObject *ev = event_type->tp_alloc(event_type, 0);
        if (ev == NULL) {
            Py_DECREF(text);
            Py_DECREF(offset);
            return NULL;
        }
        Py_INCREF(message_str);
        SLOT(ev, F_EVENT) = message_str;
        SLOT(ev, F_DATA) = text;
        Py_INCREF(event_id);
        SLOT(ev, F_ID) = event_id;
        Py_INCREF(Py_None);
        SLOT(ev, F_RETRY) = Py_None;
        Py_INCREF(t);
        SLOT(ev, F_T) = t;
        SLOT(ev, F_OFFSET) = offset;
        int failed = PyList_Append(out, ev);
        Py_DECREF(ev);
        if (failed) {
            return NULL;
        }
        pos = next;
    }
    return PyLong_FromSsize_t(pos);
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)configure, METH_O,
     "configure(SSEEvent): register the event class whose slots scan_data_events fills."},
    {"scan_data_events", (PyCFunction)(void (*)(void))scan_data_events, METH_FASTCALL,
     "scan_data_events(buf, pos, stop, base, t, event_id, max_line, out) -> int: the offset after the run of "
     "plain 'data: <value>' LF LF events starting at pos; one SSEEvent appended to out per event."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "harness.parse._sse_speedups",
    .m_doc = "Optional C speedup for harness.parse.sse: runs of plain data events.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__sse_speedups(void)
{
    message_str = PyUnicode_InternFromString("message");
    if (message_str == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
