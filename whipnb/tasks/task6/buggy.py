import torch
import torch.nn as nn
import torch.nn.functional as F

from whipnb.tasks.task6.data import make_data

torch.manual_seed(0)
# Images arrive as (N, 32, 32, 3) arrays; labels as one-hot rows over 4 classes.
images_train, onehot_train, images_val, onehot_val = make_data()

X_train, y_train = images_train, onehot_train
X_val, y_val = images_val, onehot_val.argmax(dim=1)


class StrokeNet(nn.Module):
    """Two conv blocks and a linear classifier for 28x28 RGB images."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(7 * 7 * 32, 4)  # 28 -> 14 -> 7 after two poolings

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc(x)


def evaluate(model, images, labels):
    """Accuracy on a labelled set, one image at a time, the way the model will be served."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for image, label in zip(images, labels):
            prediction = model(image).argmax(dim=1)
            correct += int(prediction.item() == label.item())
    model.train()
    return correct / len(labels)


model = StrokeNet()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=0.002)

losses = []
for epoch in range(3):
    order = torch.randperm(len(X_train))
    epoch_loss = 0.0
    for start in range(0, len(X_train), 40):
        batch = order[start:start + 40]
        optimizer.zero_grad()
        loss = criterion(model(X_train[batch]), y_train[batch])
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item() * len(batch)
    losses.append(epoch_loss / len(X_train))

val_acc = evaluate(model, X_val, y_val)
print(f"LOSSES:{[round(value, 4) for value in losses]}")
print(f"VAL_ACC:{val_acc:.4f}")
