/* Optional C receive thread for harness/capture/netstream.py: reads the capture's sockets as soon as bytes arrive,
 * whatever the event loop is doing.
 *
 * Why: the kernel stamps each received segment (SO_TIMESTAMPNS), but a recvmsg reports only the stamp of the last
 * segment it copied. When the event loop is late (hundreds of streams, a garbage collection, checks running), two
 * events of one stream wait in the socket together and the first one takes the second one's time: a TTFT measured
 * one inter-token gap late. A thread that never needs the GIL reads each socket within microseconds of its data,
 * so each event keeps its own stamp however late the loop is; the loop collects the stamped reads when it can.
 *
 * Shape: one Receiver per event loop (harness/capture/receiver.py). Its thread waits on an epoll set of sockets,
 * reads each ready one once with recvmsg (level-triggered: more data means another round), converts the kernel stamp
 * (CLOCK_REALTIME) onto CLOCK_MONOTONIC with the offset read beside it, and queues (connection, bytes, arrival,
 * lateness). It writes an eventfd when the queue goes from empty to non-empty; the loop's reader callback calls
 * drain(). A socket whose undrained bytes pass a cap is taken out of the set until the next drain, so a loop that
 * stops draining cannot make the thread buffer without bound. The thread touches no Python object.
 *
 * Every entry in the connection table is guarded by one mutex; a connection id carries a generation, so an epoll
 * event for a connection removed (and its slot reused) in the meantime is ignored. Python closes a socket only
 * after remove() returned, so the thread never reads a closed or reused descriptor.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __linux__
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_TIMESTAMPNS
#define SO_TIMESTAMPNS 35
#endif
#ifndef SCM_TIMESTAMPNS
#define SCM_TIMESTAMPNS SO_TIMESTAMPNS
#endif

#define READ_SIZE (256 * 1024)
#define MAX_EVENTS 128
#define CONTROL_ID UINT64_MAX
enum { KIND_DATA = 0, KIND_EOF = 1, KIND_ERROR = 2 };

typedef struct entry {
    struct entry *next;
    uint64_t id;
    char *data;
    Py_ssize_t len;
    double arrival;  /* CLOCK_MONOTONIC seconds: the kernel's stamp, or the thread's own read time without one */
    double lag;      /* how late the thread read it (seconds); -1 when the read carried no stamp */
    int kind;
    int err;
} entry;

typedef struct {
    int fd;
    uint32_t gen;
    int active;        /* registered and not removed */
    int done;          /* EOF or error seen: out of the epoll set for good */
    int user_paused;   /* the loop asked (its own buffer is full) */
    int auto_paused;   /* undrained bytes passed the cap */
    Py_ssize_t pending;
} conn;

typedef struct {
    PyObject_HEAD
    int epfd;
    int notify_fd;   /* written by the thread, read by the loop */
    int control_fd;  /* written by close(), wakes the thread */
    pthread_t thread;
    int started;
    int stopping;
    pthread_mutex_t mu;
    conn *conns;
    uint32_t nconns;
    uint32_t capacity;
    uint32_t *free_slots;
    uint32_t nfree;
    entry *head, *tail;
    Py_ssize_t cap;
    char *buffer;
} Receiver;

static double
seconds(struct timespec *ts)
{
    return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

static uint64_t
make_id(uint32_t slot, uint32_t gen)
{
    return ((uint64_t)gen << 32) | slot;
}

/* The connection an id names, or NULL when it was removed since. Called with the mutex held. */
static conn *
lookup(Receiver *r, uint64_t id)
{
    uint32_t slot = (uint32_t)(id & 0xffffffffu), gen = (uint32_t)(id >> 32);
    if (slot >= r->nconns)
        return NULL;
    conn *c = &r->conns[slot];
    return (c->active && c->gen == gen) ? c : NULL;
}

static void
set_interest(Receiver *r, conn *c, uint64_t id)
{
    if (c->done)
        return;
    struct epoll_event ev = {0};
    ev.events = (c->user_paused || c->auto_paused) ? 0 : EPOLLIN;
    ev.data.u64 = id;
    epoll_ctl(r->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
push(Receiver *r, entry *e, int *woke)
{
    e->next = NULL;
    if (r->tail == NULL) {
        r->head = r->tail = e;
        *woke = 1;
    } else {
        r->tail->next = e;
        r->tail = e;
    }
}

static void
read_one(Receiver *r, uint64_t id, int *woke)
{
    conn *c = lookup(r, id);
    if (c == NULL || c->done || c->user_paused || c->auto_paused)
        return;
    char control[CMSG_SPACE(sizeof(struct timespec)) + 64];
    struct iovec iov = {r->buffer, READ_SIZE};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t got = recvmsg(c->fd, &msg, MSG_DONTWAIT);
    struct timespec now_mono, now_real;
    clock_gettime(CLOCK_MONOTONIC, &now_mono);
    clock_gettime(CLOCK_REALTIME, &now_real);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    entry *e = calloc(1, sizeof(entry));
    if (e == NULL)
        return;  /* out of memory: the socket stays readable, the next round retries */
    e->id = id;
    double mono = seconds(&now_mono);
    e->arrival = mono;
    e->lag = -1.0;
    if (got <= 0) {
        e->kind = got == 0 ? KIND_EOF : KIND_ERROR;
        e->err = got == 0 ? 0 : errno;
        c->done = 1;
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        push(r, e, woke);
        return;
    }
    e->data = malloc((size_t)got);
    if (e->data == NULL) {
        free(e);
        return;
    }
    memcpy(e->data, r->buffer, (size_t)got);
    e->len = got;
    e->kind = KIND_DATA;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS
                && cm->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec stamp;
            memcpy(&stamp, CMSG_DATA(cm), sizeof(stamp));
            /* Onto CLOCK_MONOTONIC with the offset read now: a wall-clock step between reads moves both. */
            double arrival = seconds(&stamp) - (seconds(&now_real) - mono);
            e->arrival = arrival < mono ? arrival : mono;
            e->lag = mono - e->arrival;
        }
    }
    c->pending += got;
    if (c->pending > r->cap) {
        c->auto_paused = 1;
        set_interest(r, c, id);
    }
    push(r, e, woke);
}

static void *
run(void *arg)
{
    Receiver *r = (Receiver *)arg;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(r->epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        int woke = 0;
        pthread_mutex_lock(&r->mu);
        if (r->stopping) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.u64 != CONTROL_ID)
                read_one(r, events[i].data.u64, &woke);
        }
        pthread_mutex_unlock(&r->mu);
        if (woke) {
            uint64_t one = 1;
            ssize_t ignored = write(r->notify_fd, &one, sizeof(one));
            (void)ignored;
        }
    }
    return NULL;
}

static void
free_queue(entry *e)
{
    while (e != NULL) {
        entry *next = e->next;
        free(e->data);
        free(e);
        e = next;
    }
}

static void
stop(Receiver *r)
{
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = 1;
        pthread_mutex_unlock(&r->mu);
        uint64_t one = 1;
        ssize_t ignored = write(r->control_fd, &one, sizeof(one));
        (void)ignored;
        Py_BEGIN_ALLOW_THREADS
        pthread_join(r->thread, NULL);
        Py_END_ALLOW_THREADS
        r->started = 0;
    }
    if (r->epfd >= 0) close(r->epfd);
    if (r->notify_fd >= 0) close(r->notify_fd);
    if (r->control_fd >= 0) close(r->control_fd);
    r->epfd = r->notify_fd = r->control_fd = -1;
    free_queue(r->head);
    r->head = r->tail = NULL;
}

static void
Receiver_dealloc(Receiver *r)
{
    stop(r);
    pthread_mutex_destroy(&r->mu);
    free(r->conns);
    free(r->free_slots);
    free(r->buffer);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyObject *
Receiver_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"cap", NULL};
    Py_ssize_t cap = 4 * 1024 * 1024;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|n", kwlist, &cap))
        return NULL;
    Receiver *r = (Receiver *)type->tp_alloc(type, 0);
    if (r == NULL)
        return NULL;
    r->epfd = r->notify_fd = r->control_fd = -1;
    r->cap = cap;
    pthread_mutex_init(&r->mu, NULL);
    r->buffer = malloc(READ_SIZE);
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    r->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    r->control_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->buffer == NULL || r->epfd < 0 || r->notify_fd < 0 || r->control_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(r);
        return NULL;
    }
    struct epoll_event ev = {0};
    ev.events = EPOLLIN;
    ev.data.u64 = CONTROL_ID;
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->control_fd, &ev) < 0
            || pthread_create(&r->thread, NULL, run, r) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(r);
        return NULL;
    }
    r->started = 1;
    return (PyObject *)r;
}

static PyObject *
Receiver_add(Receiver *r, PyObject *arg)
{
    int fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (r->epfd < 0) {
        PyErr_SetString(PyExc_RuntimeError, "the receiver is closed");
        return NULL;
    }
    pthread_mutex_lock(&r->mu);
    uint32_t slot;
    if (r->nfree > 0) {
        slot = r->free_slots[--r->nfree];
    } else {
        if (r->nconns == r->capacity) {
            uint32_t capacity = r->capacity ? r->capacity * 2 : 64;
            conn *conns = realloc(r->conns, capacity * sizeof(conn));
            uint32_t *free_slots = conns ? realloc(r->free_slots, capacity * sizeof(uint32_t)) : NULL;
            if (conns) r->conns = conns;
            if (free_slots) r->free_slots = free_slots;
            if (conns == NULL || free_slots == NULL) {
                pthread_mutex_unlock(&r->mu);
                return PyErr_NoMemory();
            }
            memset(r->conns + r->capacity, 0, (capacity - r->capacity) * sizeof(conn));
            r->capacity = capacity;
        }
        slot = r->nconns++;
    }
    conn *c = &r->conns[slot];
    uint32_t gen = c->gen + 1;
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->gen = gen;
    c->active = 1;
    uint64_t id = make_id(slot, gen);
    struct epoll_event ev = {0};
    ev.events = EPOLLIN;
    ev.data.u64 = id;
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int saved = errno;
        c->active = 0;
        r->free_slots[r->nfree++] = slot;
        pthread_mutex_unlock(&r->mu);
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pthread_mutex_unlock(&r->mu);
    return PyLong_FromUnsignedLongLong(id);
}

static int
id_arg(PyObject *arg, uint64_t *id)
{
    *id = PyLong_AsUnsignedLongLong(arg);
    return !(*id == (uint64_t)-1 && PyErr_Occurred());
}

static PyObject *
Receiver_remove(Receiver *r, PyObject *arg)
{
    uint64_t id;
    if (!id_arg(arg, &id))
        return NULL;
    pthread_mutex_lock(&r->mu);
    conn *c = lookup(r, id);
    if (c != NULL) {
        if (!c->done && r->epfd >= 0)
            epoll_ctl(r->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        c->active = 0;
        r->free_slots[r->nfree++] = (uint32_t)(id & 0xffffffffu);
    }
    pthread_mutex_unlock(&r->mu);
    Py_RETURN_NONE;
}

static PyObject *
set_paused(Receiver *r, PyObject *arg, int paused)
{
    uint64_t id;
    if (!id_arg(arg, &id))
        return NULL;
    pthread_mutex_lock(&r->mu);
    conn *c = lookup(r, id);
    if (c != NULL && r->epfd >= 0) {
        c->user_paused = paused;
        set_interest(r, c, id);
    }
    pthread_mutex_unlock(&r->mu);
    Py_RETURN_NONE;
}

static PyObject *
Receiver_pause(Receiver *r, PyObject *arg)
{
    return set_paused(r, arg, 1);
}

static PyObject *
Receiver_resume(Receiver *r, PyObject *arg)
{
    return set_paused(r, arg, 0);
}

/* Everything read since the last drain: [(id, bytes | None, arrival, lag | None, kind, errno)], in read order. */
static PyObject *
Receiver_drain(Receiver *r, PyObject *unused)
{
    uint64_t count;
    if (r->notify_fd >= 0) {
        ssize_t ignored = read(r->notify_fd, &count, sizeof(count));  /* reset before taking the queue */
        (void)ignored;
    }
    pthread_mutex_lock(&r->mu);
    entry *e = r->head;
    r->head = r->tail = NULL;
    for (entry *x = e; x != NULL; x = x->next) {
        conn *c = lookup(r, x->id);
        if (c != NULL && x->kind == KIND_DATA) {
            c->pending -= x->len;
            if (c->auto_paused && c->pending <= r->cap / 2) {
                c->auto_paused = 0;
                set_interest(r, c, x->id);
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        free_queue(e);
        return NULL;
    }
    while (e != NULL) {
        entry *next = e->next;
        PyObject *item = NULL;
        if (out != NULL) {
            PyObject *data = e->kind == KIND_DATA ? PyBytes_FromStringAndSize(e->data, e->len)
                                                  : (Py_INCREF(Py_None), Py_None);
            if (data != NULL) {
                PyObject *lag = e->lag < 0 ? (Py_INCREF(Py_None), Py_None) : PyFloat_FromDouble(e->lag);
                item = lag ? Py_BuildValue("(KNdNii)", (unsigned long long)e->id, data, e->arrival, lag,
                                           e->kind, e->err)
                           : NULL;
                if (lag == NULL) Py_DECREF(data);
            }
            if (item == NULL || PyList_Append(out, item) < 0) {
                Py_CLEAR(out);
            }
            Py_XDECREF(item);
        }
        free(e->data);
        free(e);
        e = next;
    }
    return out;
}

static PyObject *
Receiver_fileno(Receiver *r, PyObject *unused)
{
    return PyLong_FromLong(r->notify_fd);
}

static PyObject *
Receiver_close(Receiver *r, PyObject *unused)
{
    stop(r);
    Py_RETURN_NONE;
}

static PyMethodDef Receiver_methods[] = {
    {"add", (PyCFunction)Receiver_add, METH_O, "add(fd) -> id: read this socket from now on"},
    {"remove", (PyCFunction)Receiver_remove, METH_O, "remove(id): stop reading it (close the socket after this)"},
    {"pause", (PyCFunction)Receiver_pause, METH_O, "pause(id): stop reading it until resume(id)"},
    {"resume", (PyCFunction)Receiver_resume, METH_O, "resume(id)"},
    {"drain", (PyCFunction)Receiver_drain, METH_NOARGS,
     "drain() -> [(id, bytes | None, arrival, lag | None, kind, errno)]: kind 0 data, 1 EOF, 2 error"},
    {"fileno", (PyCFunction)Receiver_fileno, METH_NOARGS, "the eventfd that is readable when drain() has entries"},
    {"close", (PyCFunction)Receiver_close, METH_NOARGS, "stop the thread and release its descriptors"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "harness.capture._receiver.Receiver",
    .tp_basicsize = sizeof(Receiver),
    .tp_dealloc = (destructor)Receiver_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A thread that reads sockets as soon as they are readable, with kernel receive stamps.",
    .tp_methods = Receiver_methods,
    .tp_new = Receiver_new,
};

static PyObject *
monotonic(PyObject *module, PyObject *unused)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return PyFloat_FromDouble(seconds(&ts));
}

static PyMethodDef module_methods[] = {
    {"monotonic", monotonic, METH_NOARGS, "CLOCK_MONOTONIC seconds: the clock arrivals are on"},
    {NULL, NULL, 0, NULL},
};
#endif /* __linux__ */

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "harness.capture._receiver",
    "A receive thread with kernel stamps for the capture's sockets (Linux only).",
    -1,
#ifdef __linux__
    module_methods,
#else
    NULL,
#endif
};

PyMODINIT_FUNC
PyInit__receiver(void)
{
#ifdef __linux__
    if (PyType_Ready(&ReceiverType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ReceiverType);
    if (PyModule_AddObject(m, "Receiver", (PyObject *)&ReceiverType) < 0) {
        Py_DECREF(&ReceiverType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
#else
    PyErr_SetString(PyExc_ImportError, "the receive thread needs Linux (epoll, eventfd, SO_TIMESTAMPNS)");
    return NULL;
#endif
}
