"""Repeat-factor sampling (Gupta et al. 2019, LVIS), inside `tf.data`.

Each training image is repeated r(I) times per pass, in expectation:
  r(I) = max over categories c in I of  max(1, sqrt(t / f(c))),
where f(c) is the fraction of training images containing c and t the
threshold (LVIS: 0.001). Fractional repeats are rounded stochastically
(floor(r) plus one more with probability r - floor(r)), from a per-example
stateless seed, and the repeated stream is shuffled again so copies do not
sit in one batch. Class fractions come from the training COCO/LVIS JSON.
"""
from typing import Callable, List

import numpy as np
import tensorflow as tf

from backbone_reuse.data import category_map


def class_image_fractions(annotation_file: str) -> List[float]:
  """f(c) for class indices 0 (background, unused) .. K."""
  per_class, num_images = category_map.class_training_counts(annotation_file)
  return [1.0] + [counts['images'] / max(num_images, 1)
                  for counts in per_class]


def repeat_factors(classes: tf.Tensor, fractions: tf.Tensor,
                   threshold: float) -> tf.Tensor:
  """r(I) of one image from its objects' class indices."""
  f = tf.gather(fractions, tf.cast(classes, tf.int32))
  per_class = tf.maximum(1.0, tf.sqrt(threshold / tf.maximum(f, 1e-12)))
  return tf.reduce_max(tf.concat([[1.0], per_class], axis=0))


def sample_fn(fractions: List[float], threshold: float, seed: int = 0,
              shuffle_buffer_size: int = 64
              ) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
  """A Model Garden `sample_fn` over decoded examples."""
  fractions = tf.constant(np.asarray(fractions, np.float32))

  def repeated(example, index):
    r = repeat_factors(example['groundtruth_classes'], fractions, threshold)
    coin = tf.random.stateless_uniform(
        [], tf.stack([tf.constant(seed, tf.int64), index]))
    times = tf.cast(tf.floor(r) + tf.cast(coin < r - tf.floor(r),
                                          tf.float32), tf.int64)
    return tf.data.Dataset.from_tensors(example).repeat(times)

  def apply(dataset: tf.data.Dataset) -> tf.data.Dataset:
    indexed = tf.data.Dataset.zip((dataset, tf.data.Dataset.counter()))
    return indexed.flat_map(repeated).shuffle(shuffle_buffer_size,
                                              seed=seed)
  return apply
