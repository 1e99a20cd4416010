/* Optional accelerator of the Python binding: a block's rows (fw_stream_next_block) made into
 * a list of str or bytes in one call, straight from the library's memory. The pure-Python path
 * (one copy of the block, bytes.split, bytes.decode per row) does the same with an extra bytes
 * object per row; this module is used when it could be built (setup.py marks it optional) and
 * FW_PY_NO_EXT is not set. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* rows(data, offsets, n, as_str) -> list: row i is data[offsets[i] .. offsets[i + 1] - 1] (the
 * byte before offsets[i + 1] is the row's NUL); data and offsets are addresses of the block's
 * buffers (fw_block_t), valid until the next call on the stream, which the caller holds. Rows
 * are decoded as strict UTF-8 when as_str (UnicodeDecodeError otherwise, as bytes.decode). */
static PyObject *rows(PyObject *self, PyObject *args) {
    unsigned long long data_addr, offsets_addr;
    Py_ssize_t n;
    int as_str;
    (void)self;
    if (!PyArg_ParseTuple(args, "KKnp", &data_addr, &offsets_addr, &n, &as_str)) {
        return NULL;
    }
    if (n < 0 || (n > 0 && (data_addr == 0 || offsets_addr == 0))) {
        PyErr_SetString(PyExc_ValueError, "rows: a block of rows needs its data and offsets");
        return NULL;
    }
    const char *data = (const char *)(uintptr_t)data_addr;
    const size_t *off = (const size_t *)(uintptr_t)offsets_addr;
    PyObject *list = PyList_New(n);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t start = off[i], end = off[i + 1];
        if (end <= start) {
            Py_DECREF(list);
            PyErr_SetString(PyExc_ValueError, "rows: the block's offsets do not increase");
            return NULL;
        }
        Py_ssize_t len = (Py_ssize_t)(end - 1 - start);
        PyObject *row = as_str ? PyUnicode_DecodeUTF8(data + start, len, NULL)
                               : PyBytes_FromStringAndSize(data + start, len);
        if (row == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, row);
    }
    return list;
}

static PyMethodDef methods[] = {
    {"rows", rows, METH_VARARGS, "A block's rows as a list of str or bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rows", "Rows of a block made in one call.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rows(void) { return PyModule_Create(&module); }
