"""LVIS converter: LVIS v1-style JSON -> TFRecords -> Model Garden's decoder."""
import glob
import json
import os

import numpy as np
from official.vision.dataloaders import tf_example_decoder
from PIL import Image
import tensorflow as tf

from backbone_reuse.data import category_map
from backbone_reuse.data import lvis_conversion

# Category ids with gaps, as in COCO; LVIS v1's are 1..1203 (identity map).
_CATEGORIES = [
    {'id': 3, 'name': 'apple', 'frequency': 'r', 'image_count': 1,
     'instance_count': 1, 'synset': 'apple.n.01'},
    {'id': 7, 'name': 'boat', 'frequency': 'c', 'image_count': 2,
     'instance_count': 2, 'synset': 'boat.n.01'},
    {'id': 12, 'name': 'cup', 'frequency': 'f', 'image_count': 1,
     'instance_count': 1, 'synset': 'cup.n.01'},
]


def _rectangle(annotation_id, image_id, category_id, x, y, w, h):
  return {'id': annotation_id, 'image_id': image_id,
          'category_id': category_id, 'bbox': [x, y, w, h], 'area': w * h,
          'segmentation': [[x, y, x + w, y, x + w, y + h, x, y + h]]}


def _lvis_v1_like(root):
  """Two images in two COCO folders, addressed by coco_url only."""
  images = []
  for image_id, folder, (height, width) in ((139, 'val2017', (48, 64)),
                                            (9, 'train2017', (40, 40))):
    name = f'{image_id:012d}.jpg'
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    Image.fromarray(np.full((height, width, 3), image_id, np.uint8)).save(
        os.path.join(root, folder, name))
    images.append({
        'id': image_id, 'height': height, 'width': width,
        'coco_url': f'http://images.cocodataset.org/{folder}/{name}',
        'neg_category_ids': [12] if image_id == 139 else [3],
        'not_exhaustive_category_ids': [7] if image_id == 139 else []})
  annotations = [_rectangle(1, 139, 3, 4, 6, 20, 10),
                 _rectangle(2, 139, 7, 30, 20, 16, 24),
                 _rectangle(3, 9, 7, 0, 0, 10, 12),
                 _rectangle(4, 9, 12, 12, 8, 20, 30)]
  path = os.path.join(root, 'lvis_v1_like.json')
  with open(path, 'w') as f:
    json.dump({'images': images, 'annotations': annotations,
               'categories': _CATEGORIES}, f)
  return path, images, annotations


class LvisTfrecordTest(tf.test.TestCase):

  def test_round_trip_through_model_gardens_decoder(self):
    root = self.get_temp_dir()
    path, images, annotations = _lvis_v1_like(root)
    pattern = lvis_conversion.convert(
        path, [os.path.join(root, 'train2017'), os.path.join(root, 'val2017')],
        os.path.join(root, 'records', 'lvis'), num_shards=2)
    files = sorted(glob.glob(pattern))
    self.assertLen(files, 2)
    mapping = category_map.CategoryMap(c['id'] for c in _CATEGORIES)
    decoder = tf_example_decoder.TfExampleDecoder(include_mask=True)
    seen = {}
    for serialized in tf.data.TFRecordDataset(files):
      decoded = decoder.decode(serialized)
      federated = lvis_conversion.decode_federated_fields(serialized)
      image_id = int(decoded['source_id'].numpy())
      seen[image_id] = (decoded, federated)
    self.assertEqual(set(seen), {139, 9})
    for image in images:
      decoded, federated = seen[image['id']]
      height, width = image['height'], image['width']
      self.assertEqual(decoded['image'].shape, (height, width, 3))
      self.assertAllEqual(federated['neg_category_ids'],
                          image['neg_category_ids'])
      self.assertAllEqual(federated['not_exhaustive_category_ids'],
                          image['not_exhaustive_category_ids'])
      expected = [a for a in annotations if a['image_id'] == image['id']]
      classes = decoded['groundtruth_classes'].numpy()
      # Contiguous indices on disk, the original ids back through the map.
      self.assertAllEqual(classes, [mapping.class_index(a['category_id'])
                                    for a in expected])
      self.assertEqual([mapping.category_id(c) for c in classes],
                       [a['category_id'] for a in expected])
      boxes = decoded['groundtruth_boxes'].numpy()  # Normalised yxyx.
      for box, annotation in zip(boxes, expected):
        x, y, w, h = annotation['bbox']
        self.assertAllClose(box, [y / height, x / width, (y + h) / height,
                                  (x + w) / width])
      masks = decoded['groundtruth_instance_masks'].numpy()
      for mask, annotation in zip(masks, expected):
        self.assertAllClose(mask.sum(), annotation['area'],
                            rtol=0.2)  # Polygon rasterisation at edges.
    with open(lvis_conversion.categories_file(
        os.path.join(root, 'records', 'lvis'))) as f:
      written = json.load(f)
    self.assertEqual(
        [(c['id'], c['class_index'], c['frequency'], c['instance_count'])
         for c in written],
        [(3, 1, 'r', 1), (7, 2, 'c', 2), (12, 3, 'f', 1)])

  def test_category_map_is_a_bijection_with_clear_errors(self):
    mapping = category_map.CategoryMap([12, 3, 7])
    self.assertEqual(mapping.num_classes, 4)
    self.assertEqual([mapping.class_index(c) for c in (3, 7, 12)], [1, 2, 3])
    self.assertEqual([mapping.category_id(i) for i in (1, 2, 3)], [3, 7, 12])
    lvis_like = category_map.CategoryMap(range(1, 1204))
    self.assertEqual(lvis_like.num_classes, 1204)
    self.assertEqual(lvis_like.class_index(1203), 1203)
    with self.assertRaisesRegex(ValueError, 'category_id=5 is not'):
      mapping.class_index(5)
    with self.assertRaisesRegex(ValueError, 'class index 0 is outside 1..3'):
      mapping.category_id(0)
    with self.assertRaisesRegex(ValueError, 'repeat'):
      category_map.CategoryMap([1, 1])

  def test_refuses_coco_files_and_missing_images(self):
    root = self.get_temp_dir()
    path, _, _ = _lvis_v1_like(root)
    with open(path) as f:
      dataset = json.load(f)
    for image in dataset['images']:
      del image['neg_category_ids']
    coco_like = os.path.join(root, 'coco_like.json')
    with open(coco_like, 'w') as f:
      json.dump(dataset, f)
    with self.assertRaisesRegex(ValueError, "lacks \\['neg_category_ids'\\]"):
      lvis_conversion.convert(coco_like, [root], os.path.join(root, 'a'))
    with self.assertRaisesRegex(ValueError, 'does not exist across image'):
      lvis_conversion.convert(path, [root, os.path.join(root, 'val2017')],
                            os.path.join(root, 'b'))
