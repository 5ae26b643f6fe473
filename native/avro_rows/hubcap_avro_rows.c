/* Avro binary encoding of rows (plain dicts) from a plan compiled once per schema.
 *
 * The plan is a tree of tuples that workers/sinks/lake/avro_columns.py builds from its own schema
 * nodes (`native_plan`), so the union-branch rules are decided once, in Python, and this file only
 * follows them. `compile(plan)` turns it into C structs; `encode(compiled, rows)` returns a list with
 * each row's datum, or None for a row it refuses. It refuses anything but the exact classes dict, list,
 * str, int, float, bool, bytes and None (subclasses included), a row or map key that is not an exact str,
 * a field outside the schema, a missing field without a default, and any value the schema refuses; the
 * caller then encodes that row the Python way, which falls back to fastavro. No Python code runs while a
 * row is encoded (only exact str keys are ever compared), so the borrowed references stay valid, and the
 * GIL is held for the whole call, so a compiled record's scratch state (the key order it last met, the
 * row's values by field) is never used by two calls at once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

enum kind { K_NULL, K_BOOLEAN, K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_BYTES, K_STRING, K_FIXED,
            K_ENUM, K_ARRAY, K_MAP, K_UNION, K_RECORD };

/* The classes a union dispatches on, in the order of the plan's by-class tuple. */
enum { C_NONE, C_BOOL, C_STR, C_BYTES, C_LIST, C_DICT, C_FLOAT, CLASSES };
#define MAX_INT_ARMS 8

typedef struct node node;

typedef struct {
    PyObject *name;    /* borrowed from the plan, as every object a node holds */
    node *type;
    PyObject *fallback; /* the default's encoded bytes, or NULL: a missing field is refused */
} field;

typedef struct {
    node *branch;      /* NULL: no branch takes the class */
    PyObject *prefix;  /* the branch index's varint */
} arm;

struct node {
    int kind;
    Py_ssize_t size;   /* fixed: its size; record: its field count */
    PyObject *symbols; /* enum: {symbol: encoded index} */
    node *items;       /* array items, map values */
    field *fields;     /* record */
    /* A record's rows are read in their own key order (capture builds them alike): the key objects
     * met at each position and the field each named are kept (strong references, so that a pointer
     * match is the same key), and a row whose keys are those objects is read with no lookup. */
    PyObject *index_of; /* {field name: its index} */
    PyObject **seen;
    Py_ssize_t *seen_field;
    PyObject **slots;  /* a row's values by field index, while it is encoded */
    arm by_class[CLASSES];
    arm ints[MAX_INT_ARMS]; /* the branches an int may take, in order */
    int nints;
};

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} buffer;

static int grow(buffer *b, Py_ssize_t more) {
    if (b->len + more <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more) cap *= 2;
    char *data = PyMem_Realloc(b->data, cap);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int put(buffer *b, const char *data, Py_ssize_t n) {
    if (grow(b, n) < 0) return -1;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

static inline int put_bytes(buffer *b, PyObject *bytes) {
    return put(b, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
}

static inline int put_long(buffer *b, long long value) {
    unsigned long long n = ((unsigned long long)value << 1) ^ (unsigned long long)(value >> 63);
    if (grow(b, 10) < 0) return -1;
    unsigned char *out = (unsigned char *)b->data + b->len;
    while (n > 0x7F) {
        *out++ = (unsigned char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    *out++ = (unsigned char)n;
    b->len = (char *)out - b->data;
    return 0;
}

static inline int put_string(buffer *b, PyObject *text) {
    Py_ssize_t n;
    const char *data = PyUnicode_AsUTF8AndSize(text, &n); /* NULL on a lone surrogate */
    if (!data || put_long(b, n) < 0) return -1;
    return put(b, data, n);
}

static int encode(const node *n, PyObject *v, buffer *b);

static int encode_union(const node *n, PyObject *v, buffer *b) {
    int cls;
    if (v == Py_None) cls = C_NONE;
    else if (PyBool_Check(v)) cls = C_BOOL; /* bool cannot be subclassed */
    else if (PyUnicode_CheckExact(v)) cls = C_STR;
    else if (PyBytes_CheckExact(v)) cls = C_BYTES;
    else if (PyList_CheckExact(v)) cls = C_LIST;
    else if (PyDict_CheckExact(v)) cls = C_DICT;
    else if (PyFloat_CheckExact(v)) cls = C_FLOAT;
    else if (PyLong_CheckExact(v)) {
        /* An int's branch depends on its value: the first long that holds it, else a double. */
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        for (int i = 0; i < n->nints; i++) {
            const node *branch = n->ints[i].branch;
            if (branch->kind == K_LONG || branch->kind == K_INT) {
                if (overflow || (branch->kind == K_INT && (x < INT32_MIN || x > INT32_MAX))) continue;
            }
            if (put_bytes(b, n->ints[i].prefix) < 0) return -1;
            return encode(branch, v, b);
        }
        return -1;
    } else return -1;
    const arm *a = &n->by_class[cls];
    if (!a->branch || put_bytes(b, a->prefix) < 0) return -1;
    return encode(a->branch, v, b);
}

static int encode_record(const node *n, PyObject *v, buffer *b) {
    if (!PyDict_CheckExact(v) || PyDict_GET_SIZE(v) > n->size) return -1;
    PyObject **slots = n->slots;
    memset(slots, 0, n->size * sizeof(PyObject *));
    Py_ssize_t at = 0, position = 0;
    PyObject *key, *value;
    while (PyDict_Next(v, &at, &key, &value)) {
        Py_ssize_t index;
        if (key == n->seen[position]) {
            index = n->seen_field[position];
        } else {
            if (!PyUnicode_CheckExact(key)) return -1;
            PyObject *found = PyDict_GetItemWithError(n->index_of, key);
            if (!found) return -1; /* a key outside the schema */
            index = PyLong_AsSsize_t(found);
            Py_INCREF(key);
            Py_XSETREF(n->seen[position], key);
            n->seen_field[position] = index;
        }
        slots[index] = value;
        position++;
    }
    for (Py_ssize_t i = 0; i < n->size; i++) {
        const field *f = &n->fields[i];
        if (slots[i]) {
            if (encode(f->type, slots[i], b) < 0) return -1;
        } else if (!f->fallback || put_bytes(b, f->fallback) < 0) {
            return -1;
        }
    }
    return 0;
}

static int encode(const node *n, PyObject *v, buffer *b) {
    switch (n->kind) {
    case K_NULL:
        return v == Py_None ? 0 : -1;
    case K_BOOLEAN: {
        if (!PyBool_Check(v)) return -1;
        char byte = v == Py_True;
        return put(b, &byte, 1);
    }
    case K_INT:
    case K_LONG: {
        if (!PyLong_CheckExact(v)) return -1;
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (n->kind == K_INT && (x < INT32_MIN || x > INT32_MAX))) return -1;
        return put_long(b, x);
    }
    case K_FLOAT:
    case K_DOUBLE: {
        double x;
        if (PyFloat_CheckExact(v)) x = PyFloat_AS_DOUBLE(v);
        else if (PyLong_CheckExact(v)) {
            x = PyLong_AsDouble(v);
            if (x == -1.0 && PyErr_Occurred()) return -1;
        } else return -1;
        if (grow(b, 8) < 0) return -1;
        int failed = n->kind == K_DOUBLE ? PyFloat_Pack8(x, b->data + b->len, 1)
                                         : PyFloat_Pack4(x, b->data + b->len, 1);
        if (failed) return -1; /* a double out of a float's range: the Python path decides */
        b->len += n->kind == K_DOUBLE ? 8 : 4;
        return 0;
    }
    case K_BYTES:
        if (!PyBytes_CheckExact(v) || put_long(b, PyBytes_GET_SIZE(v)) < 0) return -1;
        return put_bytes(b, v);
    case K_STRING:
        return PyUnicode_CheckExact(v) ? put_string(b, v) : -1;
    case K_FIXED:
        if (!PyBytes_CheckExact(v) || PyBytes_GET_SIZE(v) != n->size) return -1;
        return put_bytes(b, v);
    case K_ENUM: {
        if (!PyUnicode_CheckExact(v)) return -1;
        PyObject *index = PyDict_GetItemWithError(n->symbols, v);
        return index ? put_bytes(b, index) : -1;
    }
    case K_ARRAY: {
        if (!PyList_CheckExact(v)) return -1;
        Py_ssize_t count = PyList_GET_SIZE(v);
        if (count) {
            if (put_long(b, count) < 0) return -1;
            for (Py_ssize_t i = 0; i < count; i++) {
                if (encode(n->items, PyList_GET_ITEM(v, i), b) < 0) return -1;
            }
        }
        return put(b, "", 1); /* the end marker, a zero count */
    }
    case K_MAP: {
        if (!PyDict_CheckExact(v)) return -1;
        Py_ssize_t count = PyDict_GET_SIZE(v), at = 0;
        PyObject *key, *value;
        if (count) {
            if (put_long(b, count) < 0) return -1;
            while (PyDict_Next(v, &at, &key, &value)) {
                if (!PyUnicode_CheckExact(key) || put_string(b, key) < 0) return -1;
                if (encode(n->items, value, b) < 0) return -1;
            }
        }
        return put(b, "", 1);
    }
    case K_UNION:
        return encode_union(n, v, b);
    case K_RECORD:
        return encode_record(n, v, b);
    }
    return -1;
}

/* ---- compiling the plan ---- */

static const char *KIND_NAMES[] = {"null", "boolean", "int", "long", "float", "double", "bytes", "string",
                                   "fixed", "enum", "array", "map", "union", "record"};

static void release(node *n) {
    if (!n) return;
    release(n->items);
    if (n->fields) {
        for (Py_ssize_t i = 0; i < n->size; i++) release(n->fields[i].type);
        PyMem_Free(n->fields);
    }
    if (n->seen) {
        for (Py_ssize_t i = 0; i < n->size; i++) Py_XDECREF(n->seen[i]);
        PyMem_Free(n->seen);
    }
    PyMem_Free(n->seen_field);
    PyMem_Free(n->slots);
    Py_XDECREF(n->index_of);
    for (int c = 0; c < CLASSES; c++) release(n->by_class[c].branch);
    for (int i = 0; i < n->nints; i++) release(n->ints[i].branch);
    PyMem_Free(n);
}

static node *build(PyObject *plan);

static int build_arm(PyObject *pair, arm *a) {
    if (pair == Py_None) return 0;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(pair, 0))) {
        PyErr_SetString(PyExc_TypeError, "a union arm is (prefix bytes, plan)");
        return -1;
    }
    a->prefix = PyTuple_GET_ITEM(pair, 0);
    a->branch = build(PyTuple_GET_ITEM(pair, 1));
    return a->branch ? 0 : -1;
}

static int build_union(node *n, PyObject *by_class, PyObject *ints) {
    if (!PyTuple_Check(by_class) || PyTuple_GET_SIZE(by_class) != CLASSES || !PyTuple_Check(ints) ||
        PyTuple_GET_SIZE(ints) > MAX_INT_ARMS) {
        PyErr_SetString(PyExc_TypeError, "a union is ('union', 7 arms by class, int arms)");
        return -1;
    }
    for (int c = 0; c < CLASSES; c++) {
        if (build_arm(PyTuple_GET_ITEM(by_class, c), &n->by_class[c]) < 0) return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(ints); i++) {
        if (build_arm(PyTuple_GET_ITEM(ints, i), &n->ints[i]) < 0) return -1;
        n->nints++;
        if (!n->ints[i].branch) {
            PyErr_SetString(PyExc_TypeError, "an int arm needs a branch");
            return -1;
        }
    }
    return 0;
}

static int build_record(node *n, PyObject *fields) {
    if (!PyTuple_Check(fields)) {
        PyErr_SetString(PyExc_TypeError, "a record's fields are a tuple");
        return -1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(fields);
    n->fields = PyMem_Calloc(count + 1, sizeof(field));
    n->seen = PyMem_Calloc(count + 1, sizeof(PyObject *));
    n->seen_field = PyMem_Calloc(count + 1, sizeof(Py_ssize_t));
    n->slots = PyMem_Calloc(count + 1, sizeof(PyObject *));
    n->index_of = PyDict_New();
    if (!n->fields || !n->seen || !n->seen_field || !n->slots || !n->index_of) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
        PyObject *f = PyTuple_GET_ITEM(fields, i);
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 3 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(f, 0)) ||
            (PyTuple_GET_ITEM(f, 2) != Py_None && !PyBytes_Check(PyTuple_GET_ITEM(f, 2)))) {
            PyErr_SetString(PyExc_TypeError, "a field is (name, plan, encoded default or None)");
            return -1;
        }
        field *out = &n->fields[i];
        out->name = PyTuple_GET_ITEM(f, 0);
        out->fallback = PyTuple_GET_ITEM(f, 2) == Py_None ? NULL : PyTuple_GET_ITEM(f, 2);
        out->type = build(PyTuple_GET_ITEM(f, 1));
        n->size++; /* counted as built, so that release frees what was built */
        if (!out->type) return -1;
        PyObject *index = PyLong_FromSsize_t(i);
        int failed = !index || PyDict_SetItem(n->index_of, out->name, index) < 0;
        Py_XDECREF(index);
        if (failed) return -1;
    }
    return 0;
}

static node *build(PyObject *plan) {
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) < 1 || !PyUnicode_Check(PyTuple_GET_ITEM(plan, 0))) {
        PyErr_SetString(PyExc_TypeError, "a plan node is a tuple starting with its kind");
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(plan, 0));
    int kind = -1;
    for (int k = 0; k <= K_RECORD; k++) {
        if (name && strcmp(name, KIND_NAMES[k]) == 0) kind = k;
    }
    Py_ssize_t arity = PyTuple_GET_SIZE(plan);
    int expected = kind == K_UNION ? 3 : (kind >= K_FIXED ? 2 : 1);
    if (kind < 0 || arity != expected) {
        PyErr_Format(PyExc_ValueError, "unknown plan node %R", plan);
        return NULL;
    }
    node *n = PyMem_Calloc(1, sizeof(node));
    if (!n) return (node *)PyErr_NoMemory();
    n->kind = kind;
    int failed = 0;
    PyObject *arg = arity > 1 ? PyTuple_GET_ITEM(plan, 1) : NULL;
    switch (kind) {
    case K_FIXED:
        n->size = PyLong_AsSsize_t(arg);
        failed = n->size == -1 && PyErr_Occurred();
        break;
    case K_ENUM:
        n->symbols = arg;
        if (!PyDict_CheckExact(arg)) {
            PyErr_SetString(PyExc_TypeError, "an enum's symbols are {str: encoded index}");
            failed = 1;
        }
        break;
    case K_ARRAY:
    case K_MAP:
        n->items = build(arg);
        failed = !n->items;
        break;
    case K_UNION:
        failed = build_union(n, arg, PyTuple_GET_ITEM(plan, 2)) < 0;
        break;
    case K_RECORD:
        failed = build_record(n, arg) < 0;
        break;
    }
    if (failed) {
        release(n);
        return NULL;
    }
    return n;
}

/* ---- the module ---- */

static const char *CAPSULE = "hubcap_avro_rows.plan";

static void drop_plan(PyObject *capsule) {
    release(PyCapsule_GetPointer(capsule, CAPSULE));
    Py_XDECREF((PyObject *)PyCapsule_GetContext(capsule));
}

static PyObject *compile_plan(PyObject *module, PyObject *plan) {
    node *root = build(plan);
    if (!root) return NULL;
    PyObject *capsule = PyCapsule_New(root, CAPSULE, drop_plan);
    if (!capsule) {
        release(root);
        return NULL;
    }
    Py_INCREF(plan); /* the nodes borrow its names, defaults, prefixes and symbols */
    PyCapsule_SetContext(capsule, plan);
    return capsule;
}

static PyObject *encode_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "encode(compiled plan, list of rows)");
        return NULL;
    }
    const node *root = PyCapsule_GetPointer(args[0], CAPSULE);
    if (!root) return NULL;
    PyObject *rows = args[1];
    Py_ssize_t count = PyList_GET_SIZE(rows);
    PyObject *out = PyList_New(count);
    if (!out) return NULL;
    buffer b = {NULL, 0, 0};
    for (Py_ssize_t i = 0; i < count; i++) {
        b.len = 0;
        PyObject *datum;
        if (encode(root, PyList_GET_ITEM(rows, i), &b) < 0) {
            if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_UnicodeError) &&
                !PyErr_ExceptionMatches(PyExc_OverflowError)) {
                goto error; /* out of memory: not the row's fault */
            }
            PyErr_Clear();
            datum = Py_NewRef(Py_None);
        } else {
            datum = PyBytes_FromStringAndSize(b.data, b.len);
            if (!datum) goto error;
        }
        PyList_SET_ITEM(out, i, datum);
    }
    PyMem_Free(b.data);
    return out;
error:
    PyMem_Free(b.data);
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef METHODS[] = {
    {"compile", compile_plan, METH_O, "compile(plan) -> the plan as C structs, for encode"},
    {"encode", (PyCFunction)(void (*)(void))encode_rows, METH_FASTCALL,
     "encode(compiled, rows) -> each row's Avro datum (bytes), or None for a row it refuses"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "hubcap_avro_rows", "Avro rows from a compiled plan (see the source's header).",
    0, METHODS, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_hubcap_avro_rows(void) { return PyModuleDef_Init(&MODULE); }
