"""Stand-ins for rclpy's generated message classes, for tests on machines without ROS 2.

They copy the behaviour of rosidl_generator_py's generated Python classes that our code relies on: ``__slots__``,
keyword-only constructors where every field has a default and unknown keywords fail, setters that assert the field
type (``uint8[]`` accepts an ``array.array('B')`` as is and otherwise checks every element of a sequence, so a
NumPy array is refused; ``float64[N]`` is a NumPy float64 array of size N; ``float64[]`` an ``array.array('d')``;
``byte``/``octet`` is a one-byte ``bytes``, including the DiagnosticStatus constants) and field-wise ``__eq__``.
Only the message types dcmpnet_ros touches are defined.
"""
from __future__ import annotations

import array
from collections import UserList, UserString
from collections.abc import Sequence, Set

import numpy


def _is_seq(value) -> bool:
    return isinstance(value, (Sequence, Set, UserList)) and not isinstance(value, (str, UserString))


def _make(name: str, fields: list, constants: dict | None = None) -> type:
    """A generated-style message class; ``fields`` are (name, kind, arg) with kind as in ``_setter``."""
    slots = ["_" + f[0] for f in fields]

    def __init__(self, **kwargs):
        unknown = sorted(k for k in kwargs if "_" + k not in slots)
        assert not unknown, "Invalid arguments passed to constructor: " + ", ".join(unknown)
        for fname, kind, arg in fields:
            if kind == "u8seq":
                setattr(self, fname, array.array("B", kwargs.get(fname, [])))
            elif kind == "f64seq":
                setattr(self, fname, array.array("d", kwargs.get(fname, [])))
            elif kind == "f64arr":
                if fname in kwargs:
                    setattr(self, fname, numpy.array(kwargs[fname], dtype=numpy.float64))
                    assert getattr(self, fname).shape == (arg,)
                else:
                    setattr(self, fname, numpy.zeros(arg, dtype=numpy.float64))
            elif kind == "msg":
                setattr(self, fname, kwargs[fname] if fname in kwargs else MSGS[arg]())
            else:
                default = {"int": 0, "float": 0.0, "str": "", "bool": False, "octet": bytes([0]), "msgseq": []}[kind]
                setattr(self, fname, kwargs.get(fname, default))

    def __eq__(self, other):
        if not isinstance(other, self.__class__):
            return False
        for fname, kind, _ in fields:
            a, b = getattr(self, fname), getattr(other, fname)
            if kind == "f64arr":
                if not numpy.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    def __repr__(self):
        return name + "(" + ", ".join(f"{f}={getattr(self, f)!r}" for f, _, _ in fields) + ")"

    ns = {"__slots__": slots, "__init__": __init__, "__eq__": __eq__, "__repr__": __repr__, "__hash__": None,
          "_fields_and_field_types": {f: k for f, k, _ in fields}}
    for fname, kind, arg in fields:
        ns[fname] = _property(fname, kind, arg)
    ns.update(constants or {})
    cls = type(name, (), ns)
    cls.__module__ = "rclpy_style_msgs"
    MSGS[name] = cls
    return cls


def _property(fname: str, kind: str, arg):
    private = "_" + fname

    def getter(self):
        return getattr(self, private)

    def setter(self, value):
        if kind == "u8seq" or kind == "f64seq":
            code = "B" if kind == "u8seq" else "d"
            if isinstance(value, array.array):
                assert value.typecode == code, f"The '{fname}' array.array() must have the type code of '{code}'"
                setattr(self, private, value)
                return
            if kind == "u8seq":
                assert _is_seq(value) and all(isinstance(v, int) for v in value) and all(0 <= v < 256 for v in value), \
                    f"The '{fname}' field must be a set or sequence and each value of type 'int' in [0, 255]"
            else:
                assert _is_seq(value) and all(isinstance(v, float) for v in value), \
                    f"The '{fname}' field must be a set or sequence and each value of type 'float'"
            setattr(self, private, array.array(code, value))
            return
        if kind == "f64arr":
            if isinstance(value, numpy.ndarray):
                assert value.dtype == numpy.float64, f"The '{fname}' numpy.ndarray() must have the dtype of float64"
                assert value.size == arg, f"The '{fname}' numpy.ndarray() must have a size of {arg}"
                setattr(self, private, value)
                return
            assert _is_seq(value) and len(value) == arg and all(isinstance(v, float) for v in value), \
                f"The '{fname}' field must be a sequence with length {arg} of 'float'"
            setattr(self, private, numpy.array(value, dtype=numpy.float64))
            return
        if kind == "int":
            assert isinstance(value, int), f"The '{fname}' field must be of type 'int'"
            low, high = arg
            assert low <= value <= high, f"The '{fname}' field must be an integer in [{low}, {high}]"
        elif kind == "float":
            assert isinstance(value, float), f"The '{fname}' field must be of type 'float'"
        elif kind == "str":
            assert isinstance(value, str), f"The '{fname}' field must be of type 'str'"
        elif kind == "bool":
            assert isinstance(value, bool), f"The '{fname}' field must be of type 'bool'"
        elif kind == "octet":
            assert isinstance(value, bytes) and len(value) == 1, \
                f"The '{fname}' field must be of type 'bytes' or 'ByteString' with length 1"
        elif kind == "msg":
            assert isinstance(value, MSGS[arg]), f"The '{fname}' field must be a sub message of type '{arg}'"
        elif kind == "msgseq":
            assert _is_seq(value) and all(isinstance(v, MSGS[arg]) for v in value), \
                f"The '{fname}' field must be a set or sequence and each value of type '{arg}'"
        setattr(self, private, value)

    return property(getter, setter)


MSGS: dict[str, type] = {}
U8, U32, I32 = (0, 255), (0, 2**32 - 1), (-2**31, 2**31 - 1)

Time = _make("Time", [("sec", "int", I32), ("nanosec", "int", U32)])
Header = _make("Header", [("stamp", "msg", "Time"), ("frame_id", "str", None)])
Image = _make("Image", [("header", "msg", "Header"), ("height", "int", U32), ("width", "int", U32),
                        ("encoding", "str", None), ("is_bigendian", "int", U8), ("step", "int", U32),
                        ("data", "u8seq", None)])
CompressedImage = _make("CompressedImage", [("header", "msg", "Header"), ("format", "str", None),
                                            ("data", "u8seq", None)])
RegionOfInterest = _make("RegionOfInterest", [("x_offset", "int", U32), ("y_offset", "int", U32),
                                              ("height", "int", U32), ("width", "int", U32),
                                              ("do_rectify", "bool", None)])
CameraInfo = _make("CameraInfo", [("header", "msg", "Header"), ("height", "int", U32), ("width", "int", U32),
                                  ("distortion_model", "str", None), ("d", "f64seq", None), ("k", "f64arr", 9),
                                  ("r", "f64arr", 9), ("p", "f64arr", 12), ("binning_x", "int", U32),
                                  ("binning_y", "int", U32), ("roi", "msg", "RegionOfInterest")])
RelativeHumidity = _make("RelativeHumidity", [("header", "msg", "Header"), ("relative_humidity", "float", None),
                                               ("variance", "float", None)])
KeyValue = _make("KeyValue", [("key", "str", None), ("value", "str", None)])
DiagnosticStatus = _make("DiagnosticStatus", [("level", "octet", None), ("name", "str", None),
                                              ("message", "str", None), ("hardware_id", "str", None),
                                              ("values", "msgseq", "KeyValue")],
                         {"OK": b"\x00", "WARN": b"\x01", "ERROR": b"\x02", "STALE": b"\x03"})
DiagnosticArray = _make("DiagnosticArray", [("header", "msg", "Header"), ("status", "msgseq", "DiagnosticStatus")])
