"""h5io's fast attribute writes give what h5py's ``attrs[k] = v`` gives."""

from __future__ import annotations

import h5py
import numpy as np

from protocols.engine.h5io import LIBVER, new_attrs, overwrite_attrs

VALUES = {"text": "héllo", "empty": "", "names": ["a", "bb"], "flag": True, "npflag": np.bool_(False),
          "int": 3, "int8": np.int8(1), "float": 2.5, "nan": np.nan, "f32": np.float32(1.5),
          "empty_list": [], "floats": [1.0, 2.0]}  # the last two through h5py's own path


def test_new_attrs_match_h5py_types_shapes_and_values(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w", libver=LIBVER) as h5:
        ref, fast = h5.create_group("ref"), h5.create_group("fast")
        for key, value in VALUES.items():
            ref.attrs[key] = value
        new_attrs(fast, VALUES)
        new_attrs(fast, {"text": "replaced"})  # an existing name: replaced, as h5py does
        for key in VALUES:
            a, b = ref.attrs.get_id(key), fast.attrs.get_id(key)
            assert a.get_type() == b.get_type() and a.shape == b.shape, key
            if key not in ("nan", "text"):
                np.testing.assert_array_equal(np.asarray(ref.attrs[key]), np.asarray(fast.attrs[key]))
        assert fast.attrs["text"] == "replaced" and np.isnan(fast.attrs["nan"])
        overwrite_attrs(fast, {"nan": 0.25, "int8": np.int8(7)})
        assert fast.attrs["nan"] == 0.25 and fast.attrs["int8"] == 7 and fast.attrs["int8"].dtype == np.int8
