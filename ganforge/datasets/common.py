"""Parameter validators and small pieces shared by the image datasets."""

from __future__ import annotations

import attrs

image_size_validator = attrs.validators.and_(attrs.validators.ge(4), attrs.validators.le(1024))
channels_validator = attrs.validators.in_([1, 3])
