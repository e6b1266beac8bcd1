"""Test session setup: two logical CPU devices, so MirroredStrategy tests can
replicate. This must happen before TensorFlow initialises its devices."""
import tensorflow as tf

_cpus = tf.config.list_physical_devices('CPU')
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


def pytest_configure(config):
  config.addinivalue_line(
      'markers', 'slow: a test that trains, exports or runs a command for '
      'more than a few seconds; `-m "not slow"` is the fast tier.')


def pytest_collection_modifyitems(items):
  """tf.test.TestCase inherits `test_session`, a context manager, not a test."""
  items[:] = [item for item in items if item.name != 'test_session']
